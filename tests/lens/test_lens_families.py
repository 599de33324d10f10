"""The logit lens on tiny random models of six families, against TransformerLens' own readout.

What is compared, per family (``tests/architectures.py``), on random tokens:

1. **Last layer vs the model's output.** The lens of ``resid_post.{n-1}`` is the distribution of
   ``model(tokens)`` (TransformerLens' forward: ``ln_final``, unembedding, output soft-cap), to float
   precision, and its KL to final is 0.
2. **Every layer vs ``ActivationCache.accumulated_resid(apply_ln=True)``.** In TransformerLens 3.9,
   ``accumulated_resid(layer=None, apply_ln=True)`` passes each accumulated residual through
   ``model.ln_final`` with statistics *recomputed* from that residual (``recompute_ln=True`` because
   the target is the unembedding; older versions divided by the final layer's cached scale). Entry
   ``L + 1`` of that stack is ``resid_post.L`` normalised; TransformerLens' ``unembed`` and
   ``apply_softcap`` turn it into logits. The lens must equal that at every layer.
3. **Every layer vs ``resid_to_logits`` of TransformerLens' cached ``resid_post.L``** (the residuals
   the lens reads through registry probes are the ones ``run_with_cache`` stores).

The full distribution is read by asking for every token id as a target (``target_probs``).
On Gemma-2 the test also checks that it can fail: there the uncapped readout gives other
probabilities (the soft-cap is reached).
"""

import pytest
import torch
from architectures import FAMILIES, family_model, random_tokens
from transformer_lens.utilities.activation_functions import apply_softcap

from workbench.lens import TunedLens, logit_lens
from workbench.readout import resid_to_logits


@pytest.mark.parametrize("family", FAMILIES)
def test_logit_lens_equals_transformer_lens_readout(family):
    model = family_model(family)
    tokens = random_tokens(model, batch=2)
    V, n = model.cfg.d_vocab, model.cfg.n_layers
    res = logit_lens(model, tokens, targets=list(range(V)))
    logits, cache = model.run_with_cache(tokens)
    # 1. the last layer is the model's own output distribution
    torch.testing.assert_close(res.target_probs[:, -1], logits.softmax(-1), rtol=0, atol=1e-6)
    assert float(res.kl_to_final[:, -1].abs().max()) < 1e-6
    # 2. every layer equals TL's accumulated_resid(apply_ln=True) -> unembed -> soft-cap
    stack = cache.accumulated_resid(apply_ln=True)
    assert stack.shape[0] == n + 1
    cap = model.cfg.output_logits_soft_cap
    for L in range(n):
        ref = apply_softcap(model.unembed(stack[L + 1]), cap).softmax(-1)
        torch.testing.assert_close(res.target_probs[:, L], ref, rtol=0, atol=1e-6, msg=f"{family} layer {L}")
        # 3. ... and the readout of TL's cached residual
        mine = resid_to_logits(model, cache[f"blocks.{L}.hook_resid_post"]).softmax(-1)
        torch.testing.assert_close(res.target_probs[:, L], mine, rtol=0, atol=1e-6)
    if family == "gemma2":
        uncapped = model.unembed(stack[n]).softmax(-1)
        assert float((uncapped - logits.softmax(-1)).abs().max()) > 1e-2  # a readout without the cap is wrong


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_tuned_lens_is_the_logit_lens_and_belongs_to_its_model(family):
    model = family_model(family)
    tokens = random_tokens(model, batch=1)
    lens = TunedLens.for_model(model)
    plain = logit_lens(model, tokens, k=3)
    tuned = logit_lens(model, tokens, k=3, tuned=lens)
    torch.testing.assert_close(tuned.top_probs, plain.top_probs, rtol=0, atol=1e-6)
    other = family_model(family, seed=1)  # same config, other weights
    with pytest.raises(ValueError, match="unembed_hash"):
        logit_lens(other, tokens, tuned=lens)
