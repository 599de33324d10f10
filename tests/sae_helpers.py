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
