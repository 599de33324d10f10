"""The random-direction control pushes exactly as far as an additive method at the same strength."""

import pytest
import torch

from workbench.concepts.controls import control_edits, random_unit_directions
from workbench.edits import EditContext
from workbench.sites import Site


def _ctx(n):
    ones = torch.ones(1, n, dtype=torch.bool)
    pos = torch.arange(n)[None]
    return EditContext(Site(0, "resid_post"), ones, pos, torch.tensor([n]), torch.tensor([n]), 0)


def test_control_edits_are_norm_matched_random_directions():
    d = random_unit_directions(64, 5, seed=3)
    assert torch.allclose(d.norm(dim=1), torch.ones(5)) and torch.equal(d, random_unit_directions(64, 5, seed=3))
    gram = d @ d.T - torch.eye(5)
    assert gram.abs().max() < 0.6  # independent draws in 64 dims are far from parallel
    edits = control_edits(64, 2.5, (4.0, 8.0), ("positive", "negative"), 3, seed=3)
    assert len(edits) == 3 * 2 * 2
    h = torch.randn(1, 4, 64)
    for toward, s, k, edit in edits:
        push = edit(h, _ctx(4)) - h
        assert torch.allclose(push.norm(dim=-1), torch.full((1, 4), s * 2.5), rtol=1e-5)
        sign = 1.0 if toward == "positive" else -1.0
        assert torch.allclose(push[0, 0] / (s * 2.5), sign * d[k], atol=1e-5)
    with pytest.raises(ValueError, match="length"):
        control_edits(64, 0.0, (4.0,), ("positive",), 1)
    with pytest.raises(ValueError, match="strength"):
        control_edits(64, 1.0, (-4.0,), ("positive",), 1)
