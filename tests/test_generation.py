"""The KV-cached decoder: weights edited in any way are the weights used (issue 13 §2), configs the
fused path does not reproduce run through TransformerLens' own modules, and impossible requests fail
with errors that name the config field."""

import inspect

import pytest
import torch
from architectures import FAMILIES, family_model, ragged_prompts

from workbench import AddVector, HookRegistry
from workbench import generation as generation_module
from workbench.generation import decoder_plan

N_NEW = 6


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models only: one intra-op thread (parallel regions of tiny ops stall on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _logits_vs_forward(model, batch, n_new=N_NEW):
    """Logits of ``reg.generate`` at every step, and of ``model(tokens)`` (a plain TransformerLens
    forward) over the finished sequences at the same columns."""
    gen = HookRegistry(model).generate(batch, n_new, return_logits=True)
    full = model(gen.tokens, attention_mask=gen.attention_mask)
    p = batch.tokens.shape[1]
    return gen.logits, full[:, p - 1 : p - 1 + n_new]


def _assert_same(got, want):
    torch.testing.assert_close(got, want, atol=1e-4 * max(1.0, float(want.abs().max())), rtol=1e-4)


def _edit_data(model):
    model.blocks[0].mlp.W_out.data.mul_(0)


def _edit_no_grad(model):
    with torch.no_grad():
        model.blocks[0].attn.W_O.mul_(-2.0)
        model.blocks[1].mlp.W_in.add_(0.5)


def _edit_replace(model):
    w = model.blocks[1].attn.W_Q
    model.blocks[1].attn.W_Q = torch.nn.Parameter(torch.randn_like(w), requires_grad=False)
    model.unembed.W_U = torch.nn.Parameter(model.unembed.W_U.flip(0).clone(), requires_grad=False)


EDITS = {"data": _edit_data, "no_grad": _edit_no_grad, "replace": _edit_replace}


@pytest.mark.parametrize("how", list(EDITS))
@pytest.mark.parametrize("family", ["llama", "gemma2", "neox"])
def test_weight_edits_are_seen_by_generate(family, how):
    """Generate once (anything cached would now be cached), edit the weights, generate again: the
    logits follow the edited model's own forward, and differ from before the edit."""
    model = family_model(family)
    batch = ragged_prompts(model)
    before, want_before = _logits_vs_forward(model, batch)
    _assert_same(before, want_before)
    EDITS[how](model)
    after, want_after = _logits_vs_forward(model, batch)
    _assert_same(after, want_after)
    assert (after - before).abs().max() > 1e-3


def test_no_module_level_weight_cache():
    assert not hasattr(generation_module, "_TRANSPOSED")
    assert not hasattr(generation_module, "_Transposed")


# ------------------------------------------------------------------ fallbacks follow the config
# Config fields TransformerLens reads at forward time, which the fused attention does not reproduce:
# the decoder must route those layers through TransformerLens' attention (and still be right).
ATTN_FALLBACKS = {
    "use_attn_result": True,
    "clip_qkv": 0.5,
}


@pytest.mark.parametrize("field", list(ATTN_FALLBACKS))
def test_unsupported_attention_config_falls_back(field):
    model = family_model("qwen2")
    setattr(model.cfg, field, ATTN_FALLBACKS[field])
    plan = decoder_plan(model)
    assert all(f"TransformerLens attention (cfg.{field}=" in line for line in plan), plan
    got, want = _logits_vs_forward(model, ragged_prompts(model))
    _assert_same(got, want)


def test_unsupported_block_config_falls_back():
    model = family_model("llama")
    model.cfg.use_split_qkv_input = True  # TransformerLens reads it in TransformerBlock.forward
    plan = decoder_plan(model)
    assert all("TransformerLens block (cfg.use_split_qkv_input=True" in line for line in plan), plan
    got, want = _logits_vs_forward(model, ragged_prompts(model))
    _assert_same(got, want)


def test_hook_mlp_in_is_fused_and_fires():
    model = family_model("gpt2")
    model.cfg.use_hook_mlp_in = True
    assert all(line.endswith("fused attention") for line in decoder_plan(model))
    batch = ragged_prompts(model)
    v = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(1))
    reg = HookRegistry(model).steer("s", "blocks.1.hook_mlp_in", AddVector(v, 3.0))
    gen = reg.generate(batch, N_NEW, return_logits=True)
    full = reg.run(gen.tokens, attention_mask=gen.attention_mask)
    p = batch.tokens.shape[1]
    _assert_same(gen.logits, full[:, p - 1 : p - 1 + N_NEW])
    plain = HookRegistry(model).generate(batch, N_NEW, return_logits=True)
    assert (plain.logits - gen.logits).abs().max() > 1e-3


def test_unembed_hooks_fire_during_generate():
    model = family_model("gemma2")
    batch = ragged_prompts(model)
    reg = HookRegistry(model).probe("u", "unembed.hook_out", reduce="last")
    gen = reg.generate(batch, N_NEW, return_logits=True)
    # unembed.hook_out is before the output soft-cap: capping it gives the generated logits' last step
    torch.testing.assert_close(30.0 * torch.tanh(reg.records["u"] / 30.0), gen.logits[:, -1], atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ refusals
def test_generate_past_the_context_names_n_ctx():
    model = family_model("gpt2")
    tokens = torch.randint(3, model.cfg.d_vocab, (1, model.cfg.n_ctx - 2))
    with pytest.raises(ValueError, match=r"cfg\.n_ctx=64"):
        HookRegistry(model).generate(tokens, 5)
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_bidirectional_model_is_refused():
    model = family_model("llama")
    model.cfg.attention_dir = "bidirectional"
    with pytest.raises(ValueError, match=r"cfg\.attention_dir='bidirectional'"):
        HookRegistry(model).generate(torch.randint(3, 60, (1, 4)), 2)


@pytest.mark.parametrize("family", FAMILIES)
def test_single_row_unpadded_matches_forward(family):
    model = family_model(family)
    tokens = torch.randint(3, model.cfg.d_vocab, (1, 10), generator=torch.Generator().manual_seed(2))
    gen = HookRegistry(model).generate(tokens, N_NEW, return_logits=True)
    full = model(gen.tokens)
    _assert_same(gen.logits, full[:, 9 : 9 + N_NEW])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_new_tokens": 0}, ValueError, "max_new_tokens must be >= 1"),
        ({"max_new_tokens": True}, TypeError, "max_new_tokens must be an int"),
        ({"temperature": float("nan")}, ValueError, "SamplingConfig.temperature must be a finite number"),
        ({"temperature": -1.0}, ValueError, "SamplingConfig.temperature must be >= 0"),
        ({"temperature": 1.0, "top_p": 0.0}, ValueError, "SamplingConfig.top_p must be > 0"),
        ({"temperature": 1.0, "top_k": 0}, ValueError, "SamplingConfig.top_k must be >= 1"),
        ({"stop_at_eos": "yes"}, TypeError, "stop_at_eos must be True or False"),
    ],
)
def test_generate_arguments_are_validated(kwargs, error, match):
    model = family_model("llama")
    kwargs = {"max_new_tokens": 2, **kwargs}
    generate = inspect.unwrap(HookRegistry.generate)  # our checks, below the runtime signature check of the tests
    with pytest.raises(error, match=match):
        generate(HookRegistry(model), torch.randint(3, 60, (1, 4)), **kwargs)
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


@pytest.mark.parametrize("hook", ["blocks.1.attn.hook_z", "blocks.0.hook_mlp_out", "blocks.1.hook_resid_mid"])
def test_spliced_saelens_sae_is_used_by_generate(hook):
    """A SAELens SAE attached to a HookedSAETransformer replaces the hook point by itself; inside the
    attention (hook_z) that layer must leave the fused kernel, elsewhere the fused block calls it."""
    from sae_helpers import tiny_sae
    from sae_lens import HookedSAETransformer

    base = family_model("qwen2")
    model = HookedSAETransformer(base.cfg)
    model.load_state_dict(base.state_dict())
    model.eval()
    d_in = model.cfg.n_heads * model.cfg.d_head if hook.endswith("hook_z") else model.cfg.d_model
    sae = tiny_sae(hook, d_in=d_in, kind="relu")
    if hook.endswith("hook_z"):
        sae.cfg.reshape_activations = "hook_z"
        sae.turn_on_forward_pass_hook_z_reshaping()
    model.add_sae(sae)
    batch = ragged_prompts(model)
    got, want = _logits_vs_forward(model, batch)
    _assert_same(got, want)
    model.reset_saes()
    plain, _ = _logits_vs_forward(model, batch)
    assert (plain - got).abs().max() > 1e-3  # the SAE changed the output
