"""Probe transfer and vector cosines across sources, on synthetic sources with known geometry."""

import pytest
import torch

from workbench.concepts.transfer import transfer_sweep, vector_cosines


def _source(axis, n, g, d=8):
    shift = torch.zeros(d)
    shift[axis] = 3.0
    noise = lambda: torch.randn(n, d, generator=g)
    return (noise() + shift, noise() - shift)


def test_transfer_is_high_within_and_at_chance_across_orthogonal_sources():
    g = torch.Generator().manual_seed(0)
    acts = {
        name: {split: {"resid_post.3": _source(axis, 200, g)} for split in ("train", "test")}
        for name, axis in (("a", 0), ("b", 1))
    }
    sweep = transfer_sweep(acts).set_index(["train_on", "test_on"])
    assert sweep.loc[("a", "a"), "test_accuracy"] > 0.95 and sweep.loc[("b", "b"), "test_accuracy"] > 0.95
    assert sweep.loc[("a", "b"), "test_accuracy"] == pytest.approx(0.5, abs=0.1)
    assert sweep.loc[("a", "b"), "layer"] == 3 and sweep.loc[("a", "b"), "n_test"] == 400
    cos = vector_cosines(acts, "a", "b").iloc[0]
    assert abs(cos["mean_diff_cosine"]) < 0.15 and abs(cos["probe_cosine"]) < 0.2
    same = vector_cosines(acts, "a", "a").iloc[0]
    assert same["mean_diff_cosine"] == pytest.approx(1.0) and same["probe_cosine"] == pytest.approx(1.0)
