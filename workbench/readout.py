"""The readout: how a residual stream becomes logits. The one place in workbench that knows it.

``HookedTransformer.forward`` ends, after its last block, with

    logits = softcap(unembed(ln_final(h)))      softcap(x) = c · tanh(x / c)  when c > 0

where ``ln_final`` is whatever final normalisation the config builds (RMSNorm, LayerNorm, their
``Pre`` variants, or none), and ``c = cfg.output_logits_soft_cap`` (Gemma-2 uses 30). The norm's
statistics are recomputed from ``h``, so the same function is the logit lens (nostalgebraist 2020)
when ``h`` is an earlier layer's residual. Patching metrics, SAE output scores, lenses and the
KV-cached decoder all call this function; none of them re-derives it.
"""

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.utilities.activation_functions import apply_softcap


def final_norm(model, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
    """``ln_final(resid)`` with statistics from ``resid`` itself; identity when the config has no
    normalisation. Fires the ``ln_final`` hooks, exactly as the forward pass does."""
    if model.cfg.normalization_type is None:
        return resid
    shape = resid.shape
    flat = einops.rearrange(resid, "... d -> (...) 1 d")
    return model.ln_final(flat).reshape(shape)


def soft_cap(model, logits: Float[Tensor, "... d_vocab"]) -> Float[Tensor, "... d_vocab"]:
    """The output soft-cap ``c · tanh(logits / c)`` of ``cfg.output_logits_soft_cap`` (identity if off)."""
    return apply_softcap(logits, getattr(model.cfg, "output_logits_soft_cap", -1.0))


def unembed_normed(
    model, normed: Float[Tensor, "... d_model"], *, weight_t: Tensor | None = None, out: Tensor | None = None
) -> Float[Tensor, "... d_vocab"]:
    """``softcap(normed · W_U + b_U)``. ``weight_t`` is an optional ``W_U.T`` laid out for
    ``F.linear`` (the decoder passes a contiguous copy it owns); the math is the same. With
    ``weight_t``, ``out`` (a contiguous ``[..., d_vocab]`` buffer) receives the logits before the
    soft-cap (the lens reuses one buffer instead of allocating a chunk of logits per call)."""
    if weight_t is None:
        shape = normed.shape
        flat = einops.rearrange(normed, "... d -> (...) 1 d")
        logits = model.unembed(flat).reshape(*shape[:-1], -1)
    elif out is None:
        logits = torch.nn.functional.linear(normed, weight_t, model.unembed.b_U)
    else:
        flat = normed.reshape(-1, normed.shape[-1])
        logits = torch.addmm(model.unembed.b_U, flat, weight_t.t(), out=out.view(flat.shape[0], -1)).view(out.shape)
    return soft_cap(model, logits)


def resid_to_logits(model, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
    """Final logits from a residual after the last block (or, as a logit lens, any layer's):
    ``softcap(unembed(ln_final(resid)))``, exactly what ``HookedTransformer.forward`` computes."""
    if resid.shape[-1] != model.cfg.d_model:
        raise ValueError(f"resid_to_logits needs [..., d_model={model.cfg.d_model}], got {tuple(resid.shape)}")
    return unembed_normed(model, final_norm(model, resid.to(model.cfg.dtype)))


def token_logits(model, resid: Float[Tensor, "rows d_model"], ids: Int[Tensor, "rows k"]) -> Float[Tensor, "rows k"]:
    """``resid_to_logits(model, resid)[r, ids[r]]`` without the full unembedding: the logits of only
    the tokens ``ids[r]`` of each row, ``softcap(ln_final(resid_r) · W_U[:, ids[r]] + b_U[ids[r]])``.
    The soft-cap acts on each logit alone, so taking columns first changes nothing; ``d_model`` ×
    ``k`` multiply-adds per row instead of ``d_model`` × ``d_vocab`` (a patching metric needs two
    logits). The unembedding's own hook points do not fire."""
    if resid.ndim != 2 or resid.shape[-1] != model.cfg.d_model:
        raise ValueError(f"token_logits needs resid [rows, d_model={model.cfg.d_model}], got {tuple(resid.shape)}")
    if ids.ndim != 2 or ids.shape[0] != resid.shape[0]:
        raise ValueError(f"token_logits needs ids [rows={resid.shape[0]}, k], got {tuple(ids.shape)}")
    normed = final_norm(model, resid.to(model.cfg.dtype))
    ids = ids.to(normed.device)
    columns = model.unembed.W_U.T[ids]  # [rows, k, d_model]
    logits = torch.einsum("rd,rkd->rk", normed, columns) + model.unembed.b_U[ids]
    return soft_cap(model, logits)


__all__ = ["final_norm", "resid_to_logits", "soft_cap", "token_logits", "unembed_normed"]
