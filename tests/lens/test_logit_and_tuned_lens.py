"""Logit lens and tuned lens: mechanics on tiny models, one behaviour check on the embedded model."""

import pytest
import torch

from workbench import AddVector, HookRegistry
from workbench.artifacts import ArtifactError
from workbench.lens import (
    TunedLens,
    TunedLensConfig,
    cache_residuals,
    final_norm,
    kl_to_final,
    lens_kl_by_layer,
    lens_logits,
    logit_lens,
    target_ids,
    train_tuned_lens,
)
from workbench.models import tiny_model


@pytest.mark.parametrize("gated", [True, False])
def test_final_norm_recomputes_statistics_like_ln_final(gated):
    m = tiny_model(gated=gated)
    h = torch.randn(3, 5, m.cfg.d_model) * torch.linspace(0.1, 10, 5)[None, :, None]
    torch.testing.assert_close(final_norm(m, h), m.ln_final(h), rtol=0, atol=1e-6)


def test_last_layer_lens_is_the_model_output_and_kl_zero(tiny):
    toks = torch.randint(0, 50, (2, 7))
    res = logit_lens(tiny, toks, targets=[3, 7], k=4)
    logits = tiny(toks)
    probs = logits.softmax(-1)
    assert res.top_ids.shape == (2, tiny.cfg.n_layers, 7, 4)
    torch.testing.assert_close(res.top_probs[:, -1], probs.topk(4, -1).values, rtol=0, atol=1e-6)
    torch.testing.assert_close(res.target_probs[:, -1, :, 0], probs[..., 3], rtol=0, atol=1e-6)
    assert res.kl_to_final[:, -1].abs().max() < 1e-5
    # ranks: number of tokens strictly more likely
    assert torch.equal(res.target_ranks[:, -1, :, 1], (probs > probs[..., 7:8]).sum(-1))


def test_intermediate_layer_uses_its_own_norm_statistics(tiny):
    toks = torch.randint(0, 50, (1, 6))
    _, cache = tiny.run_with_cache(toks)
    h0 = cache["blocks.0.hook_resid_post"]
    ref = tiny.unembed(tiny.ln_final(h0))  # TL module recomputes the scale from h0
    res = logit_lens(tiny, toks, layers=[0], k=3)
    torch.testing.assert_close(res.top_probs[:, 0], ref.softmax(-1).topk(3, -1).values, rtol=0, atol=1e-6)
    # and it is not the same as reusing the final layer's cached scale
    wrong = (h0 / cache["ln_final.hook_scale"]) * tiny.ln_final.w @ tiny.W_U + tiny.b_U
    assert not torch.allclose(wrong.softmax(-1), ref.softmax(-1), atol=1e-3)


def test_lens_of_a_steered_run_changes_only_from_the_steered_layer(tiny):
    m = tiny_model(n_layers=3)
    toks = torch.randint(0, 50, (1, 5))
    target = 11
    v = m.W_U[:, target]
    reg = HookRegistry(m).steer("s", "resid_post.1", AddVector(v / v.norm(), 20.0))
    plain = logit_lens(m, toks, targets=[target])
    steered = logit_lens(m, toks, targets=[target], registry=reg)
    torch.testing.assert_close(steered.target_probs[:, 0], plain.target_probs[:, 0])
    assert (steered.target_probs[0, 1, :, 0] > plain.target_probs[0, 1, :, 0]).all()
    assert [e for e in reg.describe()["name"]] == ["s"]  # the lens' temporary probes are gone
    assert not any(h.fwd_hooks for h in m.hook_dict.values())


def test_bad_targets_and_layers_raise(tiny):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        target_ids(tiny, [999])
    with pytest.raises(ValueError, match="not a layer"):
        logit_lens(tiny, torch.randint(0, 50, (1, 4)), layers=[7])
    with pytest.raises(ValueError, match="k must be"):
        logit_lens(tiny, torch.randint(0, 50, (1, 4)), k=-1)
    with pytest.raises(ValueError, match="nothing to read"):
        logit_lens(tiny, torch.randint(0, 50, (1, 4)), k=0, kl=False)
    with pytest.raises(ValueError, match="outside the text"):
        logit_lens(tiny, torch.randint(0, 50, (1, 4)), positions=[4])
    with pytest.raises(ValueError, match="positions is empty"):
        logit_lens(tiny, torch.randint(0, 50, (1, 4)), positions=[])
    with pytest.raises(ValueError, match="chunk_size"):
        logit_lens(tiny, torch.randint(0, 50, (1, 4)), chunk_size=0)
    with pytest.raises(ValueError, match="layers is empty"):
        logit_lens(tiny, torch.randint(0, 50, (1, 4)), layers=[])
    with pytest.raises(ValueError, match=r"outside the vocabulary|must lie in \[0, 50\)"):
        logit_lens(tiny, torch.tensor([[1, 2, 50]]))
    with pytest.raises(TypeError, match=r"integer token ids|must be integers"):
        logit_lens(tiny, torch.ones(1, 3))
    assert not any(h.fwd_hooks for h in tiny.hook_dict.values())


def _saved_lens(tmp_path, model):
    lens = TunedLens.for_model(model)
    with torch.no_grad():
        lens.bias[0].fill_(0.5)
    lens.save(tmp_path / "lens")
    return tmp_path / "lens"


def test_a_tuned_lens_refuses_a_model_of_another_shape(tmp_path):
    """A lens with 3 layers must not load onto a 2-layer model (nor one of another width)."""
    path = _saved_lens(tmp_path, tiny_model(n_layers=3))
    with pytest.raises(ValueError, match=r"n_layers=3.*n_layers=2"):
        TunedLens.load(path, tiny_model(n_layers=2))
    lens = TunedLens.load(path)  # no model: the check happens at first use
    with pytest.raises(ValueError, match="n_layers"):
        logit_lens(tiny_model(n_layers=2), torch.randint(0, 50, (1, 4)), tuned=lens)
    with pytest.raises(ValueError, match="d_model"):
        TunedLens.load(path, tiny_model(n_layers=3, d_model=16))


def test_a_tuned_lens_refuses_a_model_of_the_same_shape_with_other_weights(tmp_path):
    path = _saved_lens(tmp_path, tiny_model(seed=0))
    other = tiny_model(seed=1)  # same config, other unembedding
    with pytest.raises(ValueError, match="unembed_hash"):
        TunedLens.load(path, other)
    lens = TunedLens.load(path, tiny_model(seed=0))  # the right model (a fresh copy) loads
    resid = torch.randn(2, 5, 32)
    with pytest.raises(ValueError, match="unembed_hash"):
        lens.logits(other, resid[0], 0)
    with pytest.raises(ValueError, match="unembed_hash"):
        train_tuned_lens(other, resid, TunedLensConfig(steps=1), lens=lens, progress=False)
    # changing the model's unembedding in place after the check is noticed too
    m = tiny_model(seed=0)
    lens.check(m)
    with torch.no_grad():
        m.W_U.mul_(2.0)
    with pytest.raises(ValueError, match="unembed_hash"):
        lens.check(m)


def test_tuned_lens_files_are_checked(tmp_path):
    m = tiny_model()
    with pytest.raises(ValueError, match="records no model"):
        TunedLens(2, 32).save(tmp_path / "bare")
    trained, _ = train_tuned_lens(m, torch.randn(2, 8, 32), TunedLensConfig(steps=1), lens=TunedLens(2, 32))
    assert trained.fingerprint["unembed_hash"] == TunedLens.for_model(m).fingerprint["unembed_hash"]
    with pytest.raises(ValueError, match="reserved"):
        TunedLens.for_model(m).save(tmp_path / "x", {"n_layers": 5})
    with pytest.raises(ArtifactError, match="no such file"):
        TunedLens.load(tmp_path / "missing", m)
    path = _saved_lens(tmp_path, m)
    (tmp_path / "lens.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ArtifactError, match=r"lens\.safetensors"):
        TunedLens.load(path, m)


def test_tuned_lens_starts_at_logit_lens_trains_and_roundtrips(tmp_path):
    m = tiny_model(n_layers=3)
    toks = torch.randint(0, 50, (16, 12), generator=torch.Generator().manual_seed(1))
    resid = cache_residuals(m, toks, progress=False)
    assert resid.shape == (3, 16 * 12, m.cfg.d_model)
    tl = TunedLens.for_model(m)
    h = resid[0, :5]
    torch.testing.assert_close(tl.logits(m, h, 0), lens_logits(m, h))  # zero-initialised
    before = lens_kl_by_layer(m, resid, tl)
    torch.testing.assert_close(before["tuned"], before["logit"])
    flags = [p.requires_grad for p in m.parameters()]
    tl, _ = train_tuned_lens(
        m, resid, TunedLensConfig(steps=80, tokens_per_step=64, lr=5e-2, lr_weight=1e-3), progress=False
    )
    assert [p.requires_grad for p in m.parameters()] == flags  # restored
    assert all(p.grad is None for p in m.parameters())  # the model is not trained along
    after = lens_kl_by_layer(m, resid, tl)
    assert after["tuned"][0] < 0.7 * after["logit"][0]
    assert after["tuned"][-1] == pytest.approx(0.0, abs=1e-6)
    tl.save(tmp_path / "lens.safetensors", {"note": "test"})
    back = TunedLens.load(tmp_path / "lens.safetensors", m)
    for L in range(3):
        torch.testing.assert_close(back.weight[L], tl.weight[L].detach())
        torch.testing.assert_close(back.bias[L], tl.bias[L].detach())
    assert back.metadata == {"note": "test"} and back.fingerprint == tl.fingerprint
    assert (tmp_path / "lens.json").exists()
    res = logit_lens(m, toks[:1], tuned=back)
    assert res.lens == "tuned"
    torch.testing.assert_close(res.kl_to_final[0, 0], kl_to_final(m(toks[:1])[0], back.logits(m, resid[0, :12], 0)))


def test_kl_to_final_matches_torch_kl_div():
    a, b = torch.randn(4, 9), torch.randn(4, 9)
    ref = torch.nn.functional.kl_div(b.log_softmax(-1), a.log_softmax(-1), log_target=True, reduction="none").sum(-1)
    torch.testing.assert_close(kl_to_final(a, b), ref)


def test_tuned_lens_config_validates():
    with pytest.raises(ValueError, match="steps"):
        TunedLensConfig(steps=0)
    with pytest.raises(ValueError, match="lr"):
        TunedLensConfig(lr=-1.0)


@pytest.mark.embedded
def test_logit_lens_on_embedded_finds_paris_late(embedded):
    res = logit_lens(embedded, "The capital of France is", targets=[" Paris"], k=3)
    p = res.target_probs[0, :, -1, 0]
    assert res.top_tokens[0][-1][-1][0] == " Paris"
    assert p[-1] > 0.3 and p[:10].max() < p[-1]
    assert int(res.target_ranks[0, -1, -1, 0]) == 0
