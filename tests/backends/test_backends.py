"""The backend adapter on a tiny random Llama: a TransformerBridge (compatibility mode) around the
Hugging Face model reads, steers, generates, patches, lenses and extracts what the HookedTransformer
that TransformerLens converts from the same checkpoint does; fast paths that do not apply fall back
and say so; anything else is refused by name."""

import pytest
import torch
from bridge_helpers import tiny_llama

from workbench import AddVector, HookRegistry
from workbench.backends import BridgeBackend, HookedBackend, as_backend
from workbench.concepts.extract import extract
from workbench.lens import logit_lens
from workbench.patching import activation_patch, atp, make_metric, random_task, relp
from workbench.patching.activation import patch_schedule

TEXTS = ["the cat sat on the mat", "a dog ran far away", "big red house"]
SITES = ["embed", "resid_pre.0", "attn_out.0", "resid_mid.1", "mlp_out.1", "resid_post.1", "attn.z.1", "attn.pattern.0"]


def n_hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def close(a, b, tol=1e-5):
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)


def log_probs(logits):
    """Compatibility mode centres the unembedding (logits move by a constant per position)."""
    return logits.float().log_softmax(-1)


def test_backends_are_chosen_by_model_type(pair):
    model, bridge = pair
    assert isinstance(as_backend(model), HookedBackend) and isinstance(as_backend(bridge), BridgeBackend)
    be = as_backend(bridge)
    assert as_backend(be) is be
    assert be.hook_module("blocks.1.hook_resid_post") is bridge.blocks[1].hook_out  # the compatibility alias
    assert be.hook_module("blocks.1.hook_nothing") is None


@pytest.mark.parametrize("reduce", [None, "last"])
def test_probes_read_what_the_hooked_transformer_reads(pair, reduce):
    """Left-padded batch of unequal rows; attn.z goes through the bridge's hook conversion
    ([batch, pos, d_model] inside Hugging Face's attention, [batch, pos, head, d_head] in TransformerLens)."""
    got = []
    for m in pair:
        before = n_hooks(m)
        reg = HookRegistry(m)
        for s in SITES:
            reg.probe(s, s, reduce=reduce)
        assert reg.run(TEXTS) is None
        got.append({s: reg.records[s] for s in SITES})
        assert n_hooks(m) == before
    for s in SITES:
        ref, ours = got[0][s], got[1][s]
        if reduce is None:  # one [len_i, ...] tensor per row
            assert len(ours) == len(ref) == len(TEXTS), s
            for a, b in zip(ours, ref):
                assert a.shape == b.shape, s
                close(a, b)
        else:
            assert ours.shape == ref.shape, s
            close(ours, ref)


def test_steers_edit_what_they_edit_on_the_hooked_transformer(pair):
    """A residual steer and a per-head edit of attn.z (converted, edited, converted back)."""
    model, _ = pair
    v = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(1))

    def scale_head_1(acts, ctx):
        return acts * torch.tensor([1.0, 3.0, 1.0, 1.0])[:, None]

    logits = []
    for m in pair:
        reg = HookRegistry(m)
        reg.steer("v", "resid_post.0", AddVector(v, 2.0), positions="prompt")
        reg.steer("z", "attn.z.1", scale_head_1)
        reg.probe("after", "resid_post.1")
        logits.append(reg.run(TEXTS))
        logits.append(reg.records["after"])
    close(log_probs(logits[2]), log_probs(logits[0]))
    close(logits[3], logits[1])
    plain = HookRegistry(model).run(TEXTS, need_logits=True)
    assert (log_probs(plain) - log_probs(logits[0])).abs().max() > 1e-2  # the edits did something


def test_forward_stops_where_a_hooked_transformer_stops(pair):
    model, bridge = pair
    be, tokens = as_backend(bridge), torch.tensor([[4, 5, 6, 7, 8]])
    before = n_hooks(bridge)
    with torch.no_grad():
        for stop in (0, 1, model.cfg.n_layers):
            close(be.forward(tokens, stop_at_layer=stop), model(tokens, stop_at_layer=stop))
        close(log_probs(be.forward(tokens)), log_probs(model(tokens)))
    with pytest.raises(ValueError, match="past the last layer"):
        be.forward(tokens, stop_at_layer=model.cfg.n_layers + 1)
    with pytest.raises(IndexError):  # an error inside the forward pass (an id outside the vocabulary)
        be.forward(torch.tensor([[4, 10**6]]), stop_at_layer=model.cfg.n_layers)
    assert n_hooks(bridge) == before  # the stop hook is gone, also after the error


def test_probe_only_runs_stop_early_on_the_bridge(pair):
    _, bridge = pair
    before = n_hooks(bridge)
    fired = []
    hooks = bridge.hook_dict
    handles = [
        hooks[n].register_forward_hook(lambda *a, n=n: fired.append(n))
        for n in ("blocks.1.hook_resid_pre", "blocks.1.hook_attn_out", "ln_final.hook_in")
    ]
    try:
        HookRegistry(bridge).probe("p", "resid_post.0").run(TEXTS[0])
        assert fired == []  # the early exit right after the read, inside block 0
        HookRegistry(bridge).probe("p", "resid_pre.1").run(TEXTS[0])
        assert fired == ["blocks.1.hook_resid_pre"]  # the early exit right after the read
        fired.clear()
        HookRegistry(bridge).probe("p", "resid_pre.1").run(TEXTS[0], need_logits=True)
        assert fired == ["blocks.1.hook_resid_pre", "blocks.1.hook_attn_out", "ln_final.hook_in"]
    finally:
        for h in handles:
            h.remove()
    assert n_hooks(bridge) == before


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_steered_generation_gives_the_same_tokens(pair, temperature):
    """Left-padded prompts of different lengths, a steer on prompt and generated tokens, greedy and
    sampled (same seed): the bridge (Hugging Face's KV cache) gives the tokens of the HookedTransformer
    (workbench's fused decoder), and each step's logits equal one full steered forward of the bridge
    over the result."""
    model, bridge = pair
    v = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(2))
    prompts = ["the cat sat on", "a big"]
    outs = []
    for m in pair:
        reg = HookRegistry(m).steer("v", "resid_post.0", AddVector(v, 1.5), positions="all")
        outs.append(reg.generate(prompts, 8, temperature=temperature, stop_at_eos=False, return_logits=True))
    ref, ours = outs
    assert torch.equal(ours.new_tokens, ref.new_tokens)
    if temperature > 0:
        assert len(set(ref.new_tokens.flatten().tolist())) > 3  # the random model is degenerate only when greedy
    close(log_probs(ours.logits), log_probs(ref.logits), 1e-4)
    reg = HookRegistry(bridge).steer("v", "resid_post.0", AddVector(v, 1.5), positions="all")
    with torch.no_grad():
        full = reg.run(ours.tokens, attention_mask=ours.attention_mask)
    P = ours.tokens.shape[1] - 8
    close(log_probs(full[:, P - 1 : -1]), log_probs(ours.logits), 1e-4)


def test_describe_says_which_path_each_fast_path_takes(pair):
    model, bridge = pair
    ht, br = HookRegistry(model).describe().attrs, HookRegistry(bridge).describe().attrs
    assert ht["backend"] == "HookedTransformer" and "fused KV-cached decoder" in ht["paths"]["generate"]
    assert br["backend"] == "TransformerBridge"
    assert "Hugging Face's KV cache" in br["paths"]["generate"] and "fused decoder" in br["paths"]["generate"]
    assert "'full'" in br["paths"]["restart"] and "start_at_layer" in br["paths"]["restart"]
    assert "stop" in br["paths"]["early_stop"] and br["paths"]["relp"].startswith("refused")
    assert "one plain pass" in br["paths"]["lens"] and "chunks" in ht["paths"]["lens"]


@pytest.mark.parametrize("stream", ["resid_pre", "attn_out", "heads_all_pos"])
def test_activation_patching_gives_the_same_grid(pair, stream):
    model, bridge = pair
    task = random_task(model.cfg.d_vocab, n=2, seq_len=5, seed=3)
    assert patch_schedule(model)[0] == "kv_reuse"
    used, why = patch_schedule(bridge)
    assert used == "full" and "start_at_layer" in why
    with pytest.raises(ValueError, match="start_at_layer"):
        patch_schedule(bridge, "restart")
    grids = [activation_patch(m, task.clean, task.corrupted, make_metric(m, task), stream) for m in pair]
    assert torch.isfinite(grids[0]).all()
    close(grids[1], grids[0], 1e-4)


def test_attribution_patching_matches_and_relp_is_refused(pair):
    """AtP runs through registry taps (plain gradients) and matches; RelP's rules rewrite
    HookedTransformer modules, so on a bridge they are refused before any forward pass."""
    model, bridge = pair
    task = random_task(model.cfg.d_vocab, n=2, seq_len=5, seed=3)
    ref, ours = (atp(m, task, make_metric(m, task)) for m in pair)
    for stream in ref:
        assert ref[stream].abs().max() > 1e-3, stream
        close(ours[stream], ref[stream])
    with pytest.raises(ValueError, match=r"RelP.*TransformerBridge"):
        relp(bridge, task, make_metric(bridge, task))


def test_logit_lens_and_extraction_match(pair):
    lenses = [logit_lens(m, TEXTS[0], k=3, targets=["cat"]) for m in pair]
    assert torch.equal(lenses[1].top_ids, lenses[0].top_ids)
    close(lenses[1].top_probs, lenses[0].top_probs)
    close(lenses[1].target_probs, lenses[0].target_probs)
    close(lenses[1].kl_to_final, lenses[0].kl_to_final)
    for reduce in ("last", "mean"):
        acts = [extract(m, TEXTS, ["resid_post.0", "mlp_out.1"], reduce, batch_size=2, progress=False) for m in pair]
        for k in acts[0]:
            close(acts[1][k], acts[0][k])


def test_other_models_are_refused_naming_what_is_supported():
    hf, _ = tiny_llama()
    for bad in (hf, torch.nn.Linear(2, 2), "gpt2"):
        with pytest.raises(TypeError, match=r"HookedTransformer.*TransformerBridge.*got"):
            HookRegistry(bad)
    with pytest.raises(TypeError, match="LlamaForCausalLM"):
        as_backend(hf)


def test_a_bridge_outside_compatibility_mode_is_refused(tmp_path):
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    hf, tok = tiny_llama()
    tok.save_pretrained(tmp_path)
    bridge = TransformerBridge.boot_transformers(
        "tiny-llama", hf_model=hf, tokenizer=AutoTokenizer.from_pretrained(tmp_path)
    )
    with pytest.raises(ValueError, match=r"enable_compatibility_mode\(\)"):
        HookRegistry(bridge)
