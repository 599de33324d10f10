"""Composition schemes: the summed push is the two pushes; own layers edit two sites; composing ACE
edits applies one formula after the other (and differs from the sum when the directions overlap)."""

import pytest
import torch
from concept_helpers import ctx_for

from workbench.concepts import fit_vector
from workbench.concepts.compose import ConceptPush, composition_conditions, summed_push
from workbench.concepts.steering import steering_edit
from workbench.experiments.steering_compose import baseline_for
from workbench.sites import Site


def _push(name, shift, layers=(6, 10), strength=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos, neg = torch.randn(40, 8, generator=g) + shift, torch.randn(40, 8, generator=g) - shift
    at = {L: fit_vector("mean_diff", Site(L, "resid_post"), pos, neg) for L in layers}
    ace = fit_vector("ace", Site(layers[0], "resid_post"), pos, neg)
    return ConceptPush(name, at[layers[0]], at[layers[1]], ace, strength)


def test_schemes_and_their_baselines():
    a = _push("sentiment", torch.tensor([2.0, 0, 0, 0, 0, 0, 0, 0]), layers=(6, 8))
    b = _push("French", torch.tensor([1.0, 2.0, 0, 0, 0, 0, 0, 0]), layers=(6, 10), strength=3.0, seed=1)
    conds = {c.method: c for c in composition_conditions(a, b)}
    assert set(conds) >= {
        "none",
        "sum@6",
        "own layers@8+10",
        "compose (ace)@6",
        "French alone@10",
        "sentiment alone (ace)@6",
    }
    h = torch.randn(2, 3, 8)
    ctx = ctx_for(h)
    summed = conds["sum@6"].edit[Site(6, "resid_post")](h, ctx)
    sequential = steering_edit(b.at_shared, 3.0)(steering_edit(a.at_shared, 2.0)(h, ctx), ctx)
    assert torch.allclose(summed, sequential, atol=1e-5) and torch.allclose(summed_push(a, b)(h, ctx), summed)
    assert set(conds["own layers@8+10"].edit) == {Site(8, "resid_post"), Site(10, "resid_post")}
    composed = conds["compose (ace)@6"].edit[Site(6, "resid_post")](h, ctx)
    manual = steering_edit(b.for_compose, 3.0)(steering_edit(a.for_compose, 2.0)(h, ctx), ctx)
    reversed_order = steering_edit(a.for_compose, 2.0)(steering_edit(b.for_compose, 3.0)(h, ctx), ctx)
    assert torch.allclose(composed, manual, atol=1e-5) and not torch.allclose(composed, reversed_order, atol=1e-3)
    assert baseline_for("own layers@8+10", "French") == "French alone@10"
    assert baseline_for("compose (ace)@6", "sentiment") == "sentiment alone (ace)@6"
    with pytest.raises(ValueError, match="two different sites"):
        composition_conditions(_push("x", torch.ones(8), layers=(6, 10)), _push("y", -torch.ones(8), layers=(6, 10)))
