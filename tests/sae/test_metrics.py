"""evaluate_sae / activation_metrics against values computed by hand on a tiny random model."""

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

from workbench.models import tiny_model
from workbench.sae.metrics import activation_metrics, evaluate_sae

D = 32  # tiny_model d_model


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread; more only oversubscribe a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model():
    return tiny_model(n_layers=2, d_model=D, d_vocab=50, n_ctx=64, seed=0)


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, 50, (7, 12), generator=torch.Generator().manual_seed(1))


def _standard_sae(d_sae: int) -> StandardSAE:
    sae = StandardSAE(StandardSAEConfig(d_in=D, d_sae=d_sae))
    with torch.no_grad():
        for p in (sae.W_enc, sae.W_dec, sae.b_enc, sae.b_dec):
            p.zero_()
    return sae


def _perfect_sae(n_extra: int = 16) -> StandardSAE:
    """relu(x) - relu(-x) = x: latents i and D+i carry the two signs of coordinate i; the n_extra
    latents have zero weights and bias -1, so they never fire."""
    sae = _standard_sae(2 * D + n_extra)
    eye = torch.eye(D)
    with torch.no_grad():
        sae.W_enc[:, :D] = eye
        sae.W_enc[:, D : 2 * D] = -eye
        sae.W_dec[:D] = eye
        sae.W_dec[D : 2 * D] = -eye
        sae.b_enc[2 * D :] = -1.0
    return sae


def _random_topk_sae(d_sae: int = 48, k: int = 5) -> TopKSAE:
    sae = TopKSAE(TopKSAEConfig(d_in=D, d_sae=d_sae, k=k))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D, d_sae, generator=g) / D**0.5)
        sae.W_dec.copy_(torch.randn(d_sae, D, generator=g) / d_sae**0.5)
        sae.b_enc.copy_(0.1 * torch.randn(d_sae, generator=g))
        sae.b_dec.copy_(0.1 * torch.randn(D, generator=g))
    return sae


def _ce(logits: torch.Tensor, tokens: torch.Tensor) -> float:
    """Mean next-token cross-entropy, written out by hand."""
    logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
    return float(-logp.gather(-1, tokens[:, 1:, None]).mean())


def _clean_acts(model, tokens, hook):
    _, cache = model.run_with_cache(tokens, names_filter=[hook])
    return cache[hook]


def test_perfect_sae_recovers_everything(model, tokens):
    m = evaluate_sae(model, _perfect_sae(16), "blocks.0.hook_resid_post", tokens, batch_size=3)
    assert m["fvu"] == pytest.approx(0.0, abs=1e-10)
    assert m["ce_sae"] == pytest.approx(m["ce_clean"], abs=1e-5)
    assert m["ce_recovered"] == pytest.approx(1.0, abs=1e-4)
    assert m["l0"] == pytest.approx(D)  # exactly one of (i, D+i) fires per coordinate
    assert m["dead_share"] == pytest.approx(16 / (2 * D + 16))
    assert m["n_dead"] == 16
    assert m["n_tokens"] == 7 * 11 and m["n_predictions"] == 7 * 11


def test_mean_sae_has_fvu_one_and_nothing_alive(model, tokens):
    hook = "blocks.1.hook_resid_post"
    x = _clean_acts(model, tokens, hook)[:, 1:].reshape(-1, D)
    sae = _standard_sae(8)
    with torch.no_grad():
        sae.b_enc.fill_(-1.0)
        sae.b_dec.copy_(x.mean(0))  # x̂ = x̄ for every token
    m = evaluate_sae(model, sae, hook, tokens)
    assert m["fvu"] == pytest.approx(1.0, abs=1e-5)
    assert m["l0"] == 0.0 and m["dead_share"] == 1.0
    mse = float((x - x.mean(0)).pow(2).sum(-1).mean())
    assert m["mse_per_token"] == pytest.approx(mse, rel=1e-5)


def test_zero_output_sae_matches_zero_ablation(model, tokens):
    m = evaluate_sae(model, _standard_sae(8), "blocks.0.hook_resid_post", tokens, skip_positions=0)
    assert m["ce_sae"] == pytest.approx(m["ce_zero_ablation"], abs=1e-6)
    assert m["ce_recovered"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("hook", ["blocks.0.hook_resid_post", "blocks.1.hook_resid_pre", "blocks.1.hook_resid_post"])
def test_random_sae_against_hand_computation(model, tokens, hook):
    sae = _random_topk_sae()
    skip = 1
    x = _clean_acts(model, tokens, hook)
    with torch.no_grad():
        feats = sae.encode(x)
        x_hat = sae.decode(feats)
    xs, xh, fs = x[:, skip:].reshape(-1, D), x_hat[:, skip:].reshape(-1, D), feats[:, skip:].reshape(-1, 48)
    fvu = float((xs - xh).pow(2).sum() / (xs - xs.mean(0)).pow(2).sum())
    l0 = float((fs != 0).sum(-1).float().mean())
    dead = float(((fs != 0).sum(0) == 0).float().mean())
    patched = x.clone()
    patched[:, skip:] = x_hat[:, skip:]
    ce_clean = _ce(model(tokens), tokens)
    ce_sae = _ce(model.run_with_hooks(tokens, fwd_hooks=[(hook, lambda a, hook: patched)]), tokens)
    ce_zero = _ce(model.run_with_hooks(tokens, fwd_hooks=[(hook, lambda a, hook: torch.zeros_like(a))]), tokens)

    m = evaluate_sae(model, sae, hook, tokens, batch_size=4, skip_positions=skip)
    assert m["fvu"] == pytest.approx(fvu, rel=1e-5)
    assert m["l0"] == pytest.approx(l0) and l0 == 5.0
    assert m["dead_share"] == pytest.approx(dead)
    assert m["ce_clean"] == pytest.approx(ce_clean, abs=1e-5)
    assert m["ce_sae"] == pytest.approx(ce_sae, abs=1e-5)
    assert m["ce_zero_ablation"] == pytest.approx(ce_zero, abs=1e-5)
    assert m["ce_recovered"] == pytest.approx((ce_zero - ce_sae) / (ce_zero - ce_clean), abs=1e-5)
    assert m["ce_delta"] == pytest.approx(ce_sae - ce_clean, abs=1e-5)


def test_fast_path_equals_hooked_path(model, tokens):
    sae = _random_topk_sae()
    a = evaluate_sae(model, sae, "blocks.0.hook_resid_post", tokens)  # restarts at block 1
    b = evaluate_sae(model, sae, "blocks.1.hook_resid_pre", tokens)  # same tensor, hooked forward
    for key in ("fvu", "l0", "dead_share", "ce_clean", "ce_sae", "ce_zero_ablation", "ce_recovered"):
        assert a[key] == pytest.approx(b[key], abs=1e-5), key


def test_activation_metrics_by_hand():
    """Two latents, d_in 2: x̂ = relu(x0) e0, so the error is x1 and relu(-x0) for the first coordinate."""
    sae = StandardSAE(StandardSAEConfig(d_in=2, d_sae=2))
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
        sae.W_dec.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        sae.b_enc.copy_(torch.tensor([0.0, -1.0]))
        sae.b_dec.zero_()
    acts = torch.tensor([[2.0, 1.0], [-1.0, 0.0], [3.0, -1.0], [0.0, 2.0]])
    m = activation_metrics(sae, acts, batch_size=3)
    # errors: (0,1), (-1,0), (0,-1), (0,2) -> 1+1+1+4 = 7; mean (1, 0.5); total variance 10 + 5 = 15
    assert m["fvu"] == pytest.approx(7 / 15)
    assert m["mse_per_token"] == pytest.approx(7 / 4)
    assert m["l0"] == pytest.approx(2 / 4)
    assert m["dead_share"] == pytest.approx(0.5) and m["n_dead"] == 1
    assert m["fire_counts"].tolist() == [2, 0]
    # per-coordinate variance 10 and 5, errors 1 and 6
    assert m["top_variance_dim"] == 0 and m["top_variance_share"] == pytest.approx(10 / 15)
    assert m["fvu_excl_top_dim"] == pytest.approx(6 / 5)


def test_rejects_bad_input(model, tokens):
    sae = _random_topk_sae()
    with pytest.raises(ValueError):
        evaluate_sae(model, sae, "blocks.0.hook_resid_post", tokens[0])
    with pytest.raises(ValueError):
        evaluate_sae(model, sae, "blocks.0.hook_resid_post", tokens, skip_positions=12)
