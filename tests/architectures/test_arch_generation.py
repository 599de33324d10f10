"""Steered KV-cached generation on every architecture family, against two references workbench did not
write: one full TransformerLens forward over the finished sequences, and TransformerLens' own
``generate`` with the same hook."""

import pytest
import torch
from architectures import FAMILIES, ragged_prompts, with_tokenizer

from workbench import AddVector, HookRegistry
from workbench.generation import decoder_plan

N_NEW = 9  # prompts of 5..9 tokens + 9 new ones cross the local window (4) of gemma2/mistral many times
SITE_LAYER = 0


def steer_vector(model, seed: int = 5) -> torch.Tensor:
    return torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(seed))


def steered(model, v, coeff: float = 2.0) -> HookRegistry:
    return HookRegistry(model).steer("s", f"resid_post.{SITE_LAYER}", AddVector(v, coeff))


def full_forward_logits(model, reg: HookRegistry, gen) -> torch.Tensor:
    """Logits of one full steered forward over the finished (left-padded) sequences, at the columns
    that predicted each new token: ``[batch, n_new, d_vocab]``."""
    logits = reg.run(gen.tokens, attention_mask=gen.attention_mask)
    p = gen.tokens.shape[1] - gen.new_tokens.shape[1]
    return logits[:, p - 1 : p - 1 + gen.new_tokens.shape[1]]


def test_every_family_takes_the_fused_path(arch_model):
    """The matrix only proves the fused decoder right if the fused decoder is what runs."""
    assert all(line.endswith("fused block, fused attention") for line in decoder_plan(arch_model)), decoder_plan(
        arch_model
    )


@pytest.mark.parametrize("sampling", ["greedy", "top_p"])
def test_steered_generate_equals_full_forward(arch_model, sampling):
    batch = ragged_prompts(arch_model)
    reg = steered(arch_model, steer_vector(arch_model))
    kw = {} if sampling == "greedy" else dict(temperature=1.0, top_p=0.9, seed=3)
    gen = reg.generate(batch, N_NEW, return_logits=True, **kw)
    ref = full_forward_logits(arch_model, reg, gen)
    # the cached logits at every step are the full forward's, so greedy picks the same tokens
    tol = 1e-4 * max(1.0, float(ref.abs().max()))
    torch.testing.assert_close(gen.logits, ref, atol=tol, rtol=1e-4)
    if sampling == "greedy":
        assert torch.equal(ref.argmax(-1), gen.new_tokens)
    # the steer really changes the result (otherwise the test would not test steering)
    plain = HookRegistry(arch_model).generate(batch, N_NEW, return_logits=True, **kw)
    assert (plain.logits - gen.logits).abs().max() > 1e-2


def test_attention_internals_hooked_on_one_layer(arch_model):
    """A probe on ``attn.pattern`` sends that layer through TransformerLens' attention and cache while
    the other layer stays fused; the two kinds of layer must still compose to the full forward."""
    batch = ragged_prompts(arch_model)
    reg = steered(arch_model, steer_vector(arch_model))
    reg.probe("pat", "attn.pattern.1", reduce="last")
    with reg:
        plan = decoder_plan(arch_model)
    assert plan[0].endswith("fused attention") and "TransformerLens attention" in plan[1], plan
    gen = reg.generate(batch, N_NEW, return_logits=True)
    assert reg.records["pat"].shape[-1] == gen.tokens.shape[1] - 1  # the last step's query saw every key
    reg.disable("pat")
    ref = full_forward_logits(arch_model, reg, gen)
    torch.testing.assert_close(gen.logits, ref, atol=1e-4 * max(1.0, float(ref.abs().max())), rtol=1e-4)
    assert torch.equal(ref.argmax(-1), gen.new_tokens)


def _tl_generate(model, tokens, v, coeff, *, cache: bool) -> torch.Tensor:
    def hook(acts, hook):
        return acts + coeff * v

    with model.hooks(fwd_hooks=[(f"blocks.{SITE_LAYER}.hook_resid_post", hook)]):
        out = model.generate(
            tokens,
            max_new_tokens=N_NEW,
            do_sample=False,
            use_past_kv_cache=cache,
            stop_at_eos=False,
            verbose=False,
            padding_side="left",
        )
    return out[:, tokens.shape[1] :]


@pytest.mark.parametrize("family", FAMILIES)
def test_matches_transformer_lens_generate(family):
    """TransformerLens' ``generate`` finds left padding through its tokenizer's pad id, so the model gets a
    ``TinyTokenizer`` (pad 0; prompt ids are >= 3). On all six families TransformerLens 3.9 agrees with
    itself with and without its KV cache (checked first); were it not, only that comparison would be
    skipped, not the family."""
    from architectures import family_model

    model = with_tokenizer(family_model(family))
    batch = ragged_prompts(model)
    v = steer_vector(model)
    tl_cached = _tl_generate(model, batch.tokens, v, 2.0, cache=True)
    tl_plain = _tl_generate(model, batch.tokens, v, 2.0, cache=False)
    if not torch.equal(tl_cached, tl_plain):
        pytest.skip(f"TransformerLens' generate disagrees with itself on {family} (cache vs no cache)")
    ours = steered(model, v).generate(batch, N_NEW, stop_at_eos=False).new_tokens
    assert torch.equal(ours, tl_cached)


def test_early_eos_rows_keep_generating_right(arch_model):
    """One row stops at EOS early (its later columns are masked); the others go on, still equal to the
    full forward."""
    model = with_tokenizer(arch_model)
    batch = ragged_prompts(model)
    reg = steered(model, steer_vector(model))
    first = reg.generate(batch, N_NEW, stop_at_eos=False)
    eos = int(first.new_tokens[0, 2])
    model.tokenizer.eos_token_id = eos
    gen = reg.generate(batch, N_NEW, return_logits=True)
    stopped = (first.new_tokens == eos).float().argmax(1)  # first EOS step per row (0 if none)
    steps = gen.new_tokens.shape[1]
    if steps > 3:
        assert gen.attention_mask[0, -1] == 0  # row 0 stopped, the others went on
    ref = full_forward_logits(model, reg, gen)
    for b in range(gen.tokens.shape[0]):
        has = bool((first.new_tokens[b] == eos).any())
        upto = min(steps, int(stopped[b]) + 1 if has else N_NEW)
        got, want = gen.logits[b, :upto], ref[b, :upto]
        torch.testing.assert_close(got, want, atol=1e-4 * max(1.0, float(want.abs().max())), rtol=1e-4)
