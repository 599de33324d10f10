"""Tiny SAELens SAEs with random weights, for fast mechanics tests (imported by the SAE tests)."""

import torch
from sae_lens import StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata


def tiny_sae(
    hook: str = "blocks.0.hook_resid_post",
    d_in: int = 32,
    d_sae: int = 48,
    *,
    kind: str = "topk",
    k: int = 6,
    seed: int = 0,
    dtype: str = "float32",
):
    """A random TopK (decoder-norm rescaled) or ReLU SAELens SAE with uneven decoder norms and a
    non-zero decoder bias, so normalisation bugs show."""
    torch.manual_seed(seed)
    meta = SAEMetadata(hook_name=hook)
    if kind == "topk":
        sae = TopKSAE(
            TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, rescale_acts_by_decoder_norm=True, dtype=dtype, metadata=meta)
        )
    elif kind == "relu":
        sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, dtype=dtype, metadata=meta))
    else:
        raise ValueError(kind)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        sae.W_dec.mul_(0.5 + torch.rand(d_sae, 1, generator=g, dtype=sae.W_dec.dtype))
        sae.b_dec.copy_(0.1 * torch.randn(d_in, generator=g, dtype=sae.b_dec.dtype))
        if kind == "relu":
            sae.b_enc.copy_(0.2 * torch.randn(d_sae, generator=g, dtype=sae.b_enc.dtype))
    sae.eval()
    sae.requires_grad_(False)
    return sae


def reference_output_scores(model, sae, features, top_tokens, prompt, factor: float = 10.0) -> list[float]:
    """The output score computed independently of workbench: SAELens' own forward with
    ``use_error_term=True`` spliced in by a plain TransformerLens hook, the feature boosted at the
    last position through SAELens' ``hook_sae_acts_post``, the model's own logits (TransformerLens'
    forward, soft-cap included), ranks by ``argsort`` as in the paper's code.
    ``top_tokens[i]`` is the logit-lens token set of ``features[i]``."""
    hook = sae.cfg.metadata.hook_name
    out = []
    for feature, top in zip(features, top_tokens):

        def boost(f, hook, feature=feature):
            f = f.clone()
            f[:, -1, feature] += factor * f[:, -1].max()
            return f

        sae.use_error_term = True
        sae.hook_sae_acts_post.add_hook(boost)
        try:
            logits = model.run_with_hooks(prompt[None], fwd_hooks=[(hook, lambda x, hook: sae(x))])
        finally:
            sae.hook_sae_acts_post.remove_hooks()
            sae.use_error_term = False
        q = logits[0, -1].double().softmax(-1)
        order = q.argsort(descending=True)
        ranks = [int((order == t).nonzero()) for t in top.tolist()]
        out.append((1 - min(ranks) / q.shape[0]) * q[top].max().item())
    return out
