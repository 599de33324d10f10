"""The long-text lens (chunked forward, chunked readout, targets-only / top-k-only / KL-optional
modes, layer and position subsets) gives the numbers of a brute-force lens written here from
TransformerLens' own cache: ``accumulated_resid(apply_ln=True)`` → ``unembed`` → output soft-cap →
full softmax, on tiny models of six families."""

import pytest
import torch
from architectures import FAMILIES, family_model, random_tokens
from transformer_lens.utilities.activation_functions import apply_softcap

import workbench.lens.logit as lens_module
from workbench import HookRegistry
from workbench.lens import kl_to_final, logit_lens

SEQ = 13  # crosses the local window (4) of gemma2/mistral and several forward chunks of 5
# Chunked forwards and readouts sum in other orders than one big pass: float32 noise, which the
# Gemma-2 model (calibrated to saturate both soft-caps) amplifies to a few 1e-6 in probabilities.
ATOL = 1e-5


def brute_force(model, tokens):
    """Per layer: full probabilities [batch, layer, pos, vocab] and KL to the model's own output."""
    logits, cache = model.run_with_cache(tokens)
    stack = cache.accumulated_resid(apply_ln=True)[1:]  # resid_post of each layer, final norm applied
    lens_logits = apply_softcap(model.unembed(stack.flatten(0, 1)), model.cfg.output_logits_soft_cap)
    lens_logits = lens_logits.view(stack.shape[0], *tokens.shape, -1).transpose(0, 1)
    kl = kl_to_final(logits[:, None].expand_as(lens_logits), lens_logits)
    return lens_logits.softmax(-1), kl


def _ranks(probs, ids):
    return torch.stack([(probs > probs[..., i : i + 1]).sum(-1) for i in ids], -1)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_mode_equals_the_brute_force_lens(family):
    model = family_model(family)
    tokens = random_tokens(model, batch=2, seq_len=SEQ)
    probs, kl = brute_force(model, tokens)
    tids = [3, 17, 40]
    top = probs.topk(4, -1)
    full = logit_lens(model, tokens, targets=tids, k=4)
    torch.testing.assert_close(full.top_probs, top.values, rtol=0, atol=1e-6)
    assert torch.equal(full.top_ids, top.indices)
    torch.testing.assert_close(full.target_probs, probs[..., tids], rtol=0, atol=1e-6)
    assert torch.equal(full.target_ranks, _ranks(probs, tids))
    torch.testing.assert_close(full.kl_to_final, kl, rtol=1e-4, atol=2e-6)
    assert float(full.kl_to_final[:, -1].abs().max()) == 0.0  # the reference itself
    # many small readout chunks and forward chunks: the same numbers
    small = logit_lens(model, tokens, targets=tids, k=4, chunk_size=3, forward_chunk=5)
    for field in ("top_probs", "target_probs", "kl_to_final"):
        torch.testing.assert_close(getattr(small, field), getattr(full, field), rtol=1e-5, atol=ATOL)
    assert torch.equal(small.top_ids, full.top_ids) and torch.equal(small.target_ranks, full.target_ranks)
    # targets only: no top-k, no KL
    only_t = logit_lens(model, tokens, targets=tids, k=0, kl=False, chunk_size=5)
    assert only_t.top_ids.shape[-1] == 0 and only_t.kl_to_final is None
    torch.testing.assert_close(only_t.target_probs, full.target_probs, rtol=1e-5, atol=ATOL)
    assert torch.equal(only_t.target_ranks, full.target_ranks)
    # top-k only
    only_k = logit_lens(model, tokens, k=4, kl=False, chunk_size=7, forward_chunk=4)
    torch.testing.assert_close(only_k.top_probs, full.top_probs, rtol=1e-5, atol=ATOL)
    assert torch.equal(only_k.top_ids, full.top_ids) and only_k.target_probs.shape[-1] == 0
    # a layer and position subset is the matching slice (the KL still against the final layer)
    sub = logit_lens(model, tokens, layers=[0], positions=[1, -1, 4], targets=tids, k=4)
    assert sub.positions == [1, 4, SEQ - 1] and sub.layers == [0]
    for field in ("top_probs", "target_probs", "kl_to_final"):
        ref = getattr(full, field)[:, :1, [1, 4, SEQ - 1]]
        torch.testing.assert_close(getattr(sub, field), ref, rtol=1e-5, atol=ATOL)
    assert sub.tokens[0] == [full.tokens[0][i] for i in (1, 4, SEQ - 1)]
    # through a registry (one forward pass over the text): the same numbers
    via_reg = logit_lens(model, tokens, targets=tids, k=4, registry=HookRegistry(model))
    torch.testing.assert_close(via_reg.target_probs, full.target_probs, rtol=1e-5, atol=ATOL)
    assert not any(h.fwd_hooks for h in model.hook_dict.values())


def test_the_readout_never_unembeds_more_than_a_chunk(monkeypatch):
    """No [layer, pos, vocab] or [pos, vocab] tensor: every unembedding call gets at most
    chunk_size rows, and the final distribution is computed chunk by chunk too."""
    model = family_model("llama")
    tokens = random_tokens(model, batch=1, seq_len=SEQ)
    seen = []
    real = lens_module._readout

    def spy(m, h, weight_t, out=None):
        seen.append(h.shape[0] if h.ndim == 2 else h.shape[:-1].numel())
        return real(m, h, weight_t, out)

    monkeypatch.setattr(lens_module, "_readout", spy)
    logit_lens(model, tokens, targets=[1], k=2, chunk_size=4)
    assert seen and max(seen) <= 4
    assert sum(seen) == model.cfg.n_layers * SEQ  # every layer once; the last one is the KL reference itself


def test_shallow_targets_only_reads_stop_early(monkeypatch):
    """Layer 0 at position 3 with kl=False: the forward pass stops after block 0 and token 3."""
    model = family_model("llama", n_layers=3)
    tokens = random_tokens(model, batch=1, seq_len=SEQ)
    ran = []
    for i, block in enumerate(model.blocks):
        block.register_forward_hook(lambda mod, inp, out, i=i: ran.append((i, out.shape[1])))
    try:
        res = logit_lens(model, tokens, layers=[0], positions=[3], targets=[5], k=0, kl=False, forward_chunk=2)
    finally:
        for block in model.blocks:
            block._forward_hooks.clear()
    assert {i for i, _ in ran} == {0} and sum(w for _, w in ran) == 4
    ref = logit_lens(model, tokens, targets=[5], k=0, kl=False)
    torch.testing.assert_close(res.target_probs[:, 0, 0], ref.target_probs[:, 0, 3], rtol=0, atol=1e-6)


def test_the_normaliser_survives_huge_and_tiny_logits():
    x = torch.tensor([[200.0, 0.0, -5.0], [-300.0, -301.0, -299.0], [1.0, 2.0, 3.0]])
    buf = torch.empty_like(x)
    torch.testing.assert_close(lens_module._log_normaliser(x, buf), x.logsumexp(-1))


def test_blockwise_topk_equals_torch_topk():
    g = torch.Generator().manual_seed(0)
    for V, k in ((8192, 5), (3072, 1), (49152, 10), (1000, 5)):  # 1000: no equal blocks, plain topk
        x = torch.randn(17, V, generator=g) * 4
        x[3, :] = x[3, 0]  # a row of ties: the values still agree
        got, ref = lens_module._topk(x, k), x.topk(k, -1)
        torch.testing.assert_close(got[0], ref.values, rtol=0, atol=0)
        mask = torch.ones(17, dtype=torch.bool)
        mask[3] = False
        assert torch.equal(got[1][mask], ref.indices[mask])
        assert torch.equal(x.gather(1, got[1]), got[0])


def test_a_large_vocabulary_takes_the_blockwise_path_and_still_equals_brute_force():
    model = family_model("qwen2", d_vocab=4096)
    tokens = random_tokens(model, batch=1, seq_len=9)
    probs, _ = brute_force(model, tokens)
    res = logit_lens(model, tokens, k=6, kl=False, chunk_size=5)
    top = probs.topk(6, -1)
    torch.testing.assert_close(res.top_probs, top.values, rtol=0, atol=1e-6)
    assert torch.equal(res.top_ids, top.indices)


def test_a_hooked_unembedding_runs_through_its_module():
    """The lens unembeds with a view of W_U (no copy) unless the unembedding carries a hook: then
    TransformerLens' Unembed runs, the hook fires, and the numbers are the same."""
    model = family_model("gpt2")
    tokens = random_tokens(model, batch=1, seq_len=6)
    plain = logit_lens(model, tokens, targets=[2], k=3)
    calls = []
    handle = model.unembed.hook_out.register_forward_hook(lambda mod, inp, out: calls.append(out.shape))
    try:
        hooked = logit_lens(model, tokens, targets=[2], k=3)
    finally:
        handle.remove()
    assert calls
    torch.testing.assert_close(hooked.top_probs, plain.top_probs, rtol=0, atol=1e-6)
    torch.testing.assert_close(hooked.kl_to_final, plain.kl_to_final, rtol=1e-5, atol=1e-6)


def test_kl_by_layer_equals_the_full_kl_of_every_token():
    from workbench.lens import TunedLens, lens_kl_by_layer
    from workbench.readout import resid_to_logits

    model = family_model("gemma2")
    _, cache = model.run_with_cache(random_tokens(model, batch=3, seq_len=SEQ))
    resid = torch.stack([cache[f"blocks.{L}.hook_resid_post"].flatten(0, 1) for L in range(model.cfg.n_layers)])
    final = resid_to_logits(model, resid[-1])
    ref = torch.stack([kl_to_final(final, resid_to_logits(model, h)).mean() for h in resid])
    lens = TunedLens.for_model(model)
    with torch.no_grad():
        lens.bias[0].fill_(0.3)
    got = lens_kl_by_layer(model, resid, lens, chunk=7)
    torch.testing.assert_close(got["logit"], ref, rtol=1e-5, atol=1e-6)
    tuned_ref = kl_to_final(final, resid_to_logits(model, lens.translate(resid[0], 0))).mean()
    torch.testing.assert_close(got["tuned"][0], tuned_ref, rtol=1e-5, atol=1e-6)
