"""Config variants beyond the six base families: each one either runs through the fused decoder and
still equals the full forward (and TransformerLens' own generate), or is routed through TransformerLens'
modules because the fused path does not reproduce it; ``decoder_plan`` says which, naming the field."""

import pytest
import torch
from architectures import family_model, ragged_prompts, with_tokenizer

from workbench import AddVector, HookRegistry
from workbench.generation import decoder_plan

N_NEW = 7

# (family, config overrides, what decoder_plan must say for every layer)
VARIANTS = [
    ("gpt2", {"scale_attn_by_inverse_layer_idx": True}, "fused attention"),
    ("gpt2", {"normalization_type": None}, "fused attention"),
    ("gpt2", {"attn_only": True}, "fused attention"),
    ("gpt2", {"positional_embedding_type": "shortformer"}, "TransformerLens block (cfg.positional_embedding_type"),
    ("llama", {"use_attn_scale": False}, "fused attention"),
    ("llama", {"rotary_adjacent_pairs": True}, "fused attention"),
    ("llama", {"use_hook_tokens": True}, "fused attention"),
    ("llama", {"act_fn": "solu_ln"}, "fused attention"),
    ("llama", {"use_qk_norm": True}, "TransformerLens attention (cfg.use_qk_norm=True"),
    ("neox", {"use_hook_mlp_in": True}, "fused attention"),
    ("gemma2", {"n_layers": 3}, "fused attention"),
    ("gemma2", {"rotary_base_local": 1000.0}, "fused attention"),
    ("mistral", {"window_size": 1}, "fused attention"),
    ("qwen2", {"n_key_value_heads": 1}, "fused attention"),
]


def _id(v):
    fam, over, _ = v
    return f"{fam}-" + "-".join(f"{k}={val}" for k, val in over.items())


@pytest.mark.parametrize("variant", VARIANTS, ids=[_id(v) for v in VARIANTS])
def test_variant(variant):
    family, overrides, expect = variant
    overrides = dict(overrides)
    shape = {k: overrides.pop(k) for k in ("n_layers", "window_size") if k in overrides}
    model = family_model(family, **shape, **overrides)
    plan = decoder_plan(model)
    assert all(expect in line for line in plan), plan
    batch = ragged_prompts(model)
    v = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(5))
    reg = HookRegistry(model).steer("s", "resid_post.0", AddVector(v, 2.0))
    gen = reg.generate(batch, N_NEW, return_logits=True)
    full = reg.run(gen.tokens, attention_mask=gen.attention_mask)
    p = batch.tokens.shape[1]
    ref = full[:, p - 1 : p - 1 + N_NEW]
    torch.testing.assert_close(gen.logits, ref, atol=1e-4 * max(1.0, float(ref.abs().max())), rtol=1e-4)
    assert torch.equal(ref.argmax(-1), gen.new_tokens)
    # and TransformerLens' own KV-cached generate with the same hook (on every variant here TransformerLens
    # 3.9 gives the same tokens with and without its cache; checked when this list was written)
    with_tokenizer(model)

    def hook(acts, hook):
        return acts + 2.0 * v

    with model.hooks(fwd_hooks=[("blocks.0.hook_resid_post", hook)]):
        out = model.generate(batch.tokens, N_NEW, do_sample=False, stop_at_eos=False, verbose=False)
    assert torch.equal(out[:, p:], gen.new_tokens)
