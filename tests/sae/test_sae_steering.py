"""SAE feature edits: consistency with SAELens' own encode/decode, the error term, identity at zero,
per-row batching, and the registry's "last" positions during KV-cached generation."""

import inspect

import pytest
import torch
from sae_helpers import tiny_sae

from workbench.registry import HookRegistry
from workbench.sae.steering import (
    AddFeature,
    AmplifyFeature,
    ClampFeature,
    add_feature,
    amplify_feature,
    clamp_feature,
    decoder_directions,
    steer_feature,
)
from workbench.tokens import Batch


@pytest.fixture(params=["topk", "relu"])
def sae(request):
    return tiny_sae(kind=request.param)


def one_hot(i, n):
    return torch.nn.functional.one_hot(torch.tensor(i), n).float()


def test_decoder_directions_are_saelens_decode_differences(sae):
    dirs = decoder_directions(sae)
    for i in (0, 7, sae.cfg.d_sae - 1):
        ref = sae.decode(one_hot(i, sae.cfg.d_sae)[None]) - sae.decode(torch.zeros(1, sae.cfg.d_sae))
        torch.testing.assert_close(dirs[i], ref[0])
    if sae.cfg.rescale_acts_by_decoder_norm if hasattr(sae.cfg, "rescale_acts_by_decoder_norm") else False:
        torch.testing.assert_close(dirs, sae.W_dec / sae.W_dec.norm(dim=-1, keepdim=True))
    else:
        torch.testing.assert_close(dirs, sae.W_dec)


def test_add_feature_equals_editing_the_sae_basis_with_the_error_kept(sae):
    x = torch.randn(2, 5, 32) * 3
    f = sae.encode(x)
    err = x - sae.decode(f)  # SAELens' reconstruction error
    a = 2.5
    ref = sae.decode(f + a * one_hot(11, sae.cfg.d_sae)) + err
    torch.testing.assert_close(add_feature(x, decoder_directions(sae), 11, a), ref, atol=1e-5, rtol=1e-5)


def test_amplify_matches_paper_definition(sae):
    x = torch.randn(3, 4, 32) * 3
    f = sae.encode(x)
    kappa = 10.0
    f_new = f.clone()
    f_new[..., 5] += kappa * f.max(-1).values
    ref = sae.decode(f_new) + (x - sae.decode(f))
    torch.testing.assert_close(amplify_feature(sae, x, 5, kappa), ref, atol=1e-5, rtol=1e-5)


def test_clamp_sets_the_feature_and_keeps_the_error(sae):
    x = torch.randn(2, 3, 32) * 3
    out = clamp_feature(sae, x, 9, 4.0)
    f = sae.encode(x)
    f_new = f.clone()
    f_new[..., 9] = 4.0
    torch.testing.assert_close(out, sae.decode(f_new) + (x - sae.decode(f)), atol=1e-5, rtol=1e-5)


def test_zero_edits_are_exactly_the_identity(sae):
    x = torch.randn(2, 6, 32) * 3
    assert torch.equal(add_feature(x, decoder_directions(sae), 3, 0.0), x)
    assert torch.equal(amplify_feature(sae, x, 3, 0.0), x)
    f = sae.encode(x)
    # clamping to the value the feature already has changes nothing
    assert torch.equal(clamp_feature(sae, x[:1, :1], 3, f[0, 0, 3].item()), x[:1, :1])


def test_per_row_features_equal_one_row_at_a_time(sae):
    x = torch.randn(3, 4, 32)
    feats = torch.tensor([1, 20, 33])
    amounts = torch.tensor([1.0, -2.0, 0.5])
    batched = add_feature(x, decoder_directions(sae), feats, amounts)
    amp = amplify_feature(sae, x, feats, 10.0)
    for b in range(3):
        torch.testing.assert_close(
            batched[b : b + 1], add_feature(x[b : b + 1], decoder_directions(sae), int(feats[b]), float(amounts[b]))
        )
        torch.testing.assert_close(
            amp[b : b + 1], amplify_feature(sae, x[b : b + 1], int(feats[b]), 10.0), atol=1e-6, rtol=1e-6
        )


def test_bad_features_give_clear_errors(sae):
    x = torch.randn(2, 3, 32)
    with pytest.raises(IndexError, match=r"out of range.*48 features"):
        amplify_feature(sae, x, 48)
    with pytest.raises(ValueError, match="3 features given for 2 rows"):
        amplify_feature(sae, x, torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="integer"):
        AddFeature(sae, torch.tensor([1.0]), 1.0)
    # our own check, below the signature's runtime type check (jaxtyping's hook in the tests) that fires first
    with pytest.raises(ValueError, match=r"width 31"):
        inspect.unwrap(add_feature)(torch.randn(2, 31), decoder_directions(sae), 0, 1.0)


def test_stateful_normalisation_is_refused():
    sae = tiny_sae()
    sae.cfg.normalize_activations = "layer_norm"
    with pytest.raises(ValueError, match="layer_norm"):
        AmplifyFeature(sae, 0)


def test_steer_last_in_generation_equals_a_full_forward_steering_prompt_end_and_generated(tiny):
    """positions="last" in KV-cached generation edits the last prompt token and every generated
    token: the same as one uncached forward over the whole sequence, steered at those positions."""
    sae = tiny_sae("blocks.1.hook_resid_post")
    reg = HookRegistry(tiny)
    steer_feature(reg, sae, 4, 3.0, max_activation=2.0)
    prompts = torch.tensor([[3, 7, 11, 2], [5, 9, 1, 8]])
    gen = reg.generate(Batch(prompts, torch.ones_like(prompts)), max_new_tokens=5, return_logits=True)
    full = gen.tokens
    reg2 = HookRegistry(tiny)
    reg2.steer("ref", "resid_post.1", AddFeature(sae, 4, 6.0), positions=slice(3, None))
    logits = reg2.run(full[:, :-1], need_logits=True)
    torch.testing.assert_close(logits[:, 3:], gen.logits, atol=1e-4, rtol=1e-4)
    plain = HookRegistry(tiny).run(full[:, :-1], need_logits=True)
    assert (plain[:, 3:] - gen.logits).abs().max() > 1e-3  # the steer did something


def test_registry_edits_only_the_selected_position(tiny):
    sae = tiny_sae("blocks.0.hook_resid_post")
    reg = HookRegistry(tiny)
    reg.probe("before", "resid_post.0", when="before")
    reg.probe("after", "resid_post.0", when="after")
    reg.steer("clamp", "resid_post.0", ClampFeature(sae, 2, 5.0), positions="last")
    reg.run(torch.tensor([[1, 2, 3, 4, 5]]), need_logits=True)
    before, after = reg.records["before"], reg.records["after"]
    assert torch.equal(before[:, :-1], after[:, :-1])
    torch.testing.assert_close(after[:, -1], clamp_feature(sae, before[:, -1], 2, 5.0))


@pytest.mark.embedded
def test_feature_steering_on_the_embedded_model(embedded):
    """A random SAE at resid_post.3 of SmolLM2: the steered residual differs from the clean one by
    exactly s·max_act·d_i at the steered positions, and generation changes."""
    sae = tiny_sae("blocks.3.hook_resid_post", d_in=576, d_sae=64, k=8)
    d = decoder_directions(sae)[17]
    reg = HookRegistry(embedded)
    reg.probe("before", "resid_post.3", when="before", positions="last")
    reg.probe("after", "resid_post.3", when="after", positions="last")
    base = reg.generate("The weather today is", max_new_tokens=4)
    steer_feature(reg, sae, 17, 8.0, max_activation=20.0)
    reg.run("The weather today is", need_logits=True)
    delta = reg.records["after"] - reg.records["before"]
    torch.testing.assert_close(delta[0, 0], 160.0 * d, atol=1e-3, rtol=1e-4)
    steered = reg.generate("The weather today is", max_new_tokens=4)
    assert steered.completions != base.completions
