import inspect

import pytest
import torch

from workbench.concepts.tcav import class_gradients, tcav_score, tcav_significance
from workbench.edits import AddVector
from workbench.registry import HookRegistry


def test_class_gradients_match_finite_differences(tiny):
    tokens = torch.randint(0, 50, (3, 6), generator=torch.Generator().manual_seed(0))
    v = torch.randn(tiny.cfg.d_model, generator=torch.Generator().manual_seed(1))
    grads = class_gradients(tiny, tokens, "resid_post.0", 7, batch_size=2)
    assert grads.shape == (3, tiny.cfg.d_model)
    eps = 1e-3
    outs = []
    for sign in (1, -1):
        reg = HookRegistry(tiny)
        reg.steer("move", "resid_post.0", AddVector(v, sign * eps))  # moves every position along v
        outs.append(reg.run(tokens, need_logits=True)[:, -1, 7].double())
    fd = (outs[0] - outs[1]) / (2 * eps)
    assert torch.allclose(grads.double() @ v.double(), fd, rtol=2e-2, atol=2e-3)


def test_tcav_score_counts_positive_directional_derivatives():
    g = torch.tensor([[1.0, 0.0], [2.0, -1.0], [-1.0, 0.0], [0.0, -3.0]])
    assert tcav_score(g, torch.tensor([1.0, 0.0])) == 0.5
    assert tcav_score(g, torch.tensor([0.0, -1.0])) == 0.5
    assert tcav_score(g, torch.tensor([1.0, -1.0])) == 0.75
    with pytest.raises(ValueError, match="shape"):
        inspect.unwrap(tcav_score)(g, torch.ones(3))  # our check, below the signature check


def test_tcav_significance_separates_a_real_concept_from_random():
    gen = torch.Generator().manual_seed(0)
    d = 16
    u = torch.zeros(d)
    u[0] = 1.0
    grads = torch.randn(40, d, generator=gen) * 0.3 + u  # the class score grows along u for most inputs
    pool = torch.randn(200, d, generator=gen)
    concept = torch.randn(60, d, generator=gen) + 3 * u
    res = tcav_significance(grads, concept, pool, n_runs=8, seed=0)
    assert res.score > 0.9 and res.significant
    fake = torch.randn(60, d, generator=gen)  # a "concept" that is just more random data
    res_fake = tcav_significance(grads, fake, pool, n_runs=8, seed=0)
    assert abs(res_fake.score - 0.5) < 0.35 and res_fake.p_value > res.p_value
    with pytest.raises(ValueError, match="n_runs"):
        tcav_significance(grads, concept, pool, n_runs=1)
