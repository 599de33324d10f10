"""A tiny random Llama-shaped ``HookedTransformer`` for fast unit tests of mechanics."""

import warnings
from typing import Optional, Union

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from .base import check_device, check_dtype


def tiny_model(
    n_layers: int = 2,
    d_model: int = 32,
    n_heads: int = 4,
    d_vocab: int = 50,
    n_ctx: int = 64,
    *,
    gated: bool = True,
    n_key_value_heads: Optional[int] = 2,
    seed: int = 0,
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.float32,
) -> HookedTransformer:
    """A tiny random Llama-shaped HookedTransformer (RMSNorm, rotary, gated SiLU, GQA) for fast
    unit tests of mechanics. It has no tokenizer: feed it token ids. ``gated=False`` gives a
    GPT-2-like block (LayerNorm, GELU, absolute positions)."""
    dev, dtype = check_device(device), check_dtype(dtype)
    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_model // n_heads,
        n_key_value_heads=n_key_value_heads,
        d_mlp=4 * d_model,
        d_vocab=d_vocab,
        n_ctx=n_ctx,
        act_fn="silu" if gated else "gelu",
        normalization_type="RMS" if gated else "LN",
        final_rms=gated,
        positional_embedding_type="rotary" if gated else "standard",
        rotary_dim=d_model // n_heads if gated else None,
        gated_mlp=gated,
        default_prepend_bos=False,
        seed=seed,
        init_weights=True,
        device=str(dev),
        dtype=dtype,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg)
    # Give RMS/LN weights some spread so norm-related bugs show up in tests.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith((".w", "ln_final.w")) and p.ndim == 1:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g, dtype=torch.float32).to(p))
    model.eval()
    model.requires_grad_(False)
    return model
