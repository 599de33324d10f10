"""Linear-AcT: the quantile-matched affine fit is the closed-form 1-D OT map on Gaussians, it moves a
sample onto its target (scipy's Wasserstein distance), the edit interpolates with λ, and the causal
estimation over a stack of layers carries the source mean onto the target mean at the last layer."""

import numpy as np
import pytest
import torch
from scipy.stats import norm, wasserstein_distance

from workbench.concepts import get_method
from workbench.concepts.methods import LinearAcT
from workbench.concepts.transport import (
    TransportEdit,
    fit_affine_transport,
    gaussian_transport,
    quantile_pairs,
    transport,
)
from workbench.edits import EditContext
from workbench.sites import Site

MU_S, SD_S = torch.tensor([0.0, 2.0, -1.0]), torch.tensor([1.0, 0.5, 3.0])
MU_T, SD_T = torch.tensor([1.5, -2.0, -1.0]), torch.tensor([2.0, 0.5, 0.3])


def _ctx(b, p):
    return EditContext(
        Site(0, "resid_post"),
        torch.ones(b, p, dtype=torch.bool),
        torch.arange(p).expand(b, p),
        torch.full((b,), p),
        torch.full((b,), p),
        0,
    )


def test_exact_gaussian_quantiles_give_the_closed_form_map():
    levels = (np.arange(500) + 0.5) / 500
    z = torch.tensor(norm.ppf(levels), dtype=torch.float64)[:, None]
    x, y = MU_S + SD_S * z, MU_T + SD_T * z
    omega, beta = fit_affine_transport(x, y)
    w_ref, b_ref = gaussian_transport(MU_S, SD_S, MU_T, SD_T)
    assert torch.allclose(omega, w_ref, atol=1e-9) and torch.allclose(beta, b_ref, atol=1e-9)


def test_sampled_gaussians_match_the_closed_form_and_the_map_transports():
    g = torch.Generator().manual_seed(0)
    x = MU_S + SD_S * torch.randn(20000, 3, generator=g, dtype=torch.float64)
    y = MU_T + SD_T * torch.randn(15000, 3, generator=g, dtype=torch.float64)  # unequal sizes: quantiles
    omega, beta = fit_affine_transport(x, y)
    w_ref, b_ref = gaussian_transport(MU_S, SD_S, MU_T, SD_T)
    assert torch.allclose(omega, w_ref, rtol=0.03) and torch.allclose(beta, b_ref, atol=0.05)
    moved = transport(x, omega, beta, 1.0)
    for j in range(3):
        before = wasserstein_distance(x[:, j].numpy(), y[:, j].numpy())
        after = wasserstein_distance(moved[:, j].numpy(), y[:, j].numpy())
        assert after < 0.05 * before + 0.02
    xq, _ = quantile_pairs(x[:100], y[:300])
    assert torch.allclose(xq, torch.tensor(np.quantile(x[:100].numpy(), (np.arange(300) + 0.5) / 300, axis=0)))


def test_transport_edit_interpolates_and_respects_the_support():
    omega, beta = torch.tensor([2.0, 0.5]), torch.tensor([1.0, -1.0])
    h = torch.tensor([[[1.0, 4.0], [10.0, 0.0]]])
    assert torch.equal(TransportEdit(omega, beta, 0.0)(h, _ctx(1, 2)), h)
    assert torch.allclose(TransportEdit(omega, beta, 1.0)(h, _ctx(1, 2)), omega * h + beta)
    half = TransportEdit(omega, beta, 0.5)(h, _ctx(1, 2))
    assert torch.allclose(half, 0.5 * h + 0.5 * (omega * h + beta))
    clipped = TransportEdit(omega, beta, 1.0, torch.tensor([0.0, 0.0]), torch.tensor([5.0, 5.0]))(h, _ctx(1, 2))
    assert clipped[0, 1, 0] == 10.0 and clipped[0, 0, 0] == 3.0  # 10 lies outside [0, 5]: unchanged
    with pytest.raises(ValueError, match="lam"):
        TransportEdit(omega, beta, 1.5)
    with pytest.raises(ValueError, match="shape"):
        TransportEdit(omega, beta[:1])


def test_linear_act_method_fits_both_directions():
    g = torch.Generator().manual_seed(1)
    pos = 3.0 + 2.0 * torch.randn(300, 4, generator=g)
    neg = -1.0 + 0.5 * torch.randn(300, 4, generator=g)
    v = get_method("linear_act").fit(Site(3, "resid_post"), pos, neg, concept="toy")
    assert torch.allclose(v.extras["omega_positive"], torch.full((4,), 4.0), rtol=0.15)
    assert torch.allclose(v.extras["omega_negative"], torch.full((4,), 0.25), rtol=0.15)
    up = v.extras["omega_positive"] * neg + v.extras["beta_positive"]
    assert torch.allclose(up.mean(0), pos.mean(0), atol=1e-4)  # least squares keeps the means exact
    edit = get_method("linear_act").edit(v, 1.0, "negative")
    assert torch.allclose(edit(pos[None], _ctx(1, 300))[0].mean(0), neg.mean(0), atol=1e-3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        get_method("linear_act").edit(v, 4.0, "positive")
    with pytest.raises(ValueError, match="n_quantiles"):
        LinearAcT(n_quantiles=1)


@pytest.mark.embedded
def test_causal_stack_moves_the_source_mean_onto_the_target_at_the_last_layer(embedded):
    from workbench.concepts import extract, load_concept

    data = load_concept("sentiment").train.head(12)
    method = LinearAcT(use_support=False)
    sites = [Site(k, "resid_post") for k in (0, 1, 2)]
    stack = method.fit_sites(embedded, sites, data.positive, data.negative)
    assert [v.site for v in stack] == sites and stack[1].params["causal"] and stack[1].params["pooling"] == "tokens"
    steers = {v.site: method.edit(v, 1.0, "positive") for v in stack}
    moved = extract(embedded, list(data.negative), "resid_post.2", "tokens", steers=steers, progress=False)
    target = extract(embedded, list(data.positive), "resid_post.2", "tokens", progress=False)
    mu_t = target["resid_post.2"].mean(0)
    gap = float((moved["resid_post.2"].mean(0) - mu_t).norm())
    before = extract(embedded, list(data.negative), "resid_post.2", "tokens", progress=False)["resid_post.2"]
    # each map fits interpolated quantiles (unequal token counts), so the means match closely, not exactly
    assert gap < 0.1 * float((before.mean(0) - mu_t).norm())
    # estimated independently, the stacked maps compound: each layer's map re-applies the shift
    independent = LinearAcT(use_support=False, causal=False)
    loose = independent.fit_sites(embedded, sites, data.positive, data.negative)
    steers = {v.site: independent.edit(v, 1.0, "positive") for v in loose}
    over = extract(embedded, list(data.negative), "resid_post.2", "tokens", steers=steers, progress=False)
    assert gap < 0.5 * float((over["resid_post.2"].mean(0) - mu_t).norm())
