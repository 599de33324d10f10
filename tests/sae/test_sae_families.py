"""SAE feature lens and output scores on tiny random models of six architecture families (issue 9 §2),
against references workbench did not write: TransformerLens' own forward (final norm, unembedding,
output soft-cap) and SAELens' own error-term forward spliced in with a TransformerLens hook.

The Gemma-2 case matters most: its output logits are soft-capped at 30, and its weights are scaled
so that the cap bends the logits; a readout that skipped the cap would give other scores."""

import warnings

import pytest
import torch
from architectures import FAMILIES, SEQ_LEN, family_model, random_tokens
from sae_helpers import reference_output_scores, tiny_sae
from transformer_lens import HookedTransformer, HookedTransformerConfig

from workbench.sae.feature_lens import feature_logit_lens
from workbench.sae.last_position import last_position_restart_problem
from workbench.sae.scores import output_scores, output_scores_naive
from workbench.sae.steering import decoder_directions

FEATURES = [0, 5, 17, 30, 47]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _prompt(model):
    return random_tokens(model, batch=1, seq_len=SEQ_LEN, seed=3)[0]  # longer than the local window


@pytest.mark.parametrize("family", FAMILIES)
def test_feature_lens_is_transformer_lens_readout(family):
    """p_i = softmax(TransformerLens' forward from the final residual, run on d_i as if it were one)."""
    model = family_model(family)
    sae = tiny_sae("blocks.1.hook_resid_post", d_in=model.cfg.d_model)
    lens = feature_logit_lens(model, sae, k=5, n_bottom=3)
    d = decoder_directions(sae)
    with torch.no_grad():
        ref = model(d[None], start_at_layer=model.cfg.n_layers)[0]  # ln_final, unembed, soft-cap
    top = ref.softmax(-1).topk(5, dim=-1)
    assert torch.equal(lens.top_tokens, top.indices)
    torch.testing.assert_close(lens.top_probs, top.values, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(lens.top_logits, ref.topk(5, dim=-1).values, atol=1e-5, rtol=1e-5)
    assert torch.equal(lens.bottom_tokens, ref.topk(3, dim=-1, largest=False).indices)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("hook", ["blocks.0.hook_resid_post", "blocks.1.hook_resid_pre", "blocks.1.hook_resid_post"])
def test_output_scores_equal_transformer_lens_plus_saelens(family, hook):
    model = family_model(family)
    assert last_position_restart_problem(model) is None
    sae = tiny_sae(hook, d_in=model.cfg.d_model)
    prompt = _prompt(model)
    lens = feature_logit_lens(model, sae, k=5)
    ref = torch.tensor(reference_output_scores(model, sae, FEATURES, lens.top_tokens[FEATURES], prompt))
    assert ref.std() > 0
    for method in ("cached", "full"):
        got = output_scores(model, sae, lens, FEATURES, prompt=prompt, batch_size=2, method=method, progress=False)
        torch.testing.assert_close(got.double(), ref.double(), atol=2e-6, rtol=1e-4)
    naive = output_scores_naive(model, sae, lens, FEATURES, prompt=prompt, progress=False)
    torch.testing.assert_close(naive.double(), ref.double(), atol=2e-6, rtol=1e-4)


def test_gemma2_logits_reach_the_cap_so_the_test_can_fail():
    """The capped readout differs from the uncapped one on this model and prompt: the pre-cap logits
    exceed the cap, and scores from uncapped logits would not match the reference."""
    from workbench.sae.scores import output_score_from_logits

    model = family_model("gemma2")
    cap = model.cfg.output_logits_soft_cap
    prompt = _prompt(model)
    with torch.no_grad():
        logits, cache = model.run_with_cache(prompt[None], names_filter="ln_final.hook_normalized")
    raw = cache["ln_final.hook_normalized"] @ model.W_U + model.b_U
    assert raw.abs().max() > cap and logits.abs().max() < cap
    top = torch.stack([raw[0, -1].topk(5).indices, raw[0, -1].topk(5, largest=False).indices])
    capped = output_score_from_logits(logits[0, -1].expand(2, -1), top)
    uncapped = output_score_from_logits(raw[0, -1].expand(2, -1), top)
    assert (capped - uncapped).abs().max() > 1e-3


def _tiny_config(**overrides) -> HookedTransformerConfig:
    base = dict(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_mlp=64,
        d_vocab=64,
        n_ctx=32,
        act_fn="gelu",
        normalization_type="LN",
        seed=0,
        device="cpu",
    )
    return HookedTransformerConfig(**{**base, **overrides})


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (dict(positional_embedding_type="shortformer"), "positional_embedding_type"),
        (dict(attention_dir="bidirectional"), "attention_dir"),
    ],
)
def test_cached_restart_refuses_configs_it_does_not_cover(overrides, field):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(_tiny_config(**overrides)).eval()
    sae = tiny_sae("blocks.0.hook_resid_post", d_in=32)
    prompt = torch.tensor([3, 7, 11, 2, 9, 4])
    lens = feature_logit_lens(model, sae, k=5)
    with pytest.raises(ValueError, match=f"cfg.{field}"):
        output_scores(model, sae, lens, FEATURES, prompt=prompt, method="cached", progress=False)
    # "auto" falls back to full forward passes, which follow the config
    auto = output_scores(model, sae, lens, FEATURES, prompt=prompt, progress=False)
    ref = torch.tensor(reference_output_scores(model, sae, FEATURES, lens.top_tokens[FEATURES], prompt))
    torch.testing.assert_close(auto.double(), ref.double(), atol=2e-6, rtol=1e-4)
    torch.testing.assert_close(auto, output_scores_naive(model, sae, lens, FEATURES, prompt=prompt, progress=False))
