"""One block of ``HookedTransformer`` on the positions ``start..T-1`` of many rows, attending to
cached keys and values of the earlier positions, without TransformerLens' per-call weight copies.

This is the inner loop of KV-reuse patching (``workbench.patching.reuse``). TransformerLens'
``TransformerBlock.forward`` with a frozen cache entry computes the same thing, but copies every
weight matrix on every call (``W.T.contiguous()`` in the gated MLP, a re-laid-out ``W_O`` and
``W_Q/W_K/W_V`` in the attention); with one call per block and start position those copies cost
about as much as the patching matmuls themselves.

The fused block is ``TransformerBlock.forward`` for pre-norm blocks (sequential or parallel
attention/MLP, Gemma-2 post-norms, attention-only), calling the same hook points in the same order
(``hook_resid_pre``, the norms' own modules, ``attn.hook_z``, ``hook_attn_out``, ``hook_resid_mid``,
``hook_mlp_in``, the MLP's ``hook_pre``/``hook_pre_linear``/``hook_post``, ``hook_mlp_out``,
``hook_resid_post``), so registry steers at those sites apply. The attention is
``softmax(mask(softcap(q kᵀ / attn_scale))) v`` with TransformerLens' own rotary tables
(``attn.apply_rotary`` at the positions' offsets), its ``attn_scale``, GQA grouping
(query head i reads key/value head ``i // (n_heads / n_kv)``), the score soft-cap and the sliding
window of local layers (key > query − ``window_size``), then ``z W_O + b_O``. The query, key and
value projections use one matrix ``[W_Q | W_K | W_V]`` packed once per patching call
(``pack_qkv``; the weights cannot change during the call).

``with_only_last`` computes, for the last block, keys and values of every position but queries,
attention output and MLP of the last position only: nothing after the last block reads the other
positions (the readout is the last position).

``fused_blockers(block)`` lists what this does not reproduce (the config field, or a hook the fused
attention would skip); such a block runs through TransformerLens' own forward instead.
"""

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from transformer_lens.components import Attention, GroupedQueryAttention
from transformer_lens.components.mlps.gated_mlp import GatedMLP
from transformer_lens.components.mlps.mlp import MLP
from transformer_lens.components.transformer_block import TransformerBlock
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities.activation_functions import apply_softcap
from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

# Config fields the fused block does not reproduce: (field, is-fine test, why).
_REQUIREMENTS = (
    ("use_attn_in", lambda c: not c.use_attn_in, "per-head attention inputs"),
    ("use_split_qkv_input", lambda c: not c.use_split_qkv_input, "separate q/k/v inputs"),
    (
        "original_architecture",
        lambda c: c.original_architecture not in POST_NORM_ARCHITECTURES,
        "post-norm block (norms after the sublayers)",
    ),
    (
        "positional_embedding_type",
        lambda c: c.positional_embedding_type in ("rotary", "standard"),
        "only rotary or absolute positions (shortformer and ALiBi go through TransformerLens' block)",
    ),
    ("attention_dir", lambda c: getattr(c, "attention_dir", "causal") == "causal", "causal attention"),
    ("use_qk_norm", lambda c: not getattr(c, "use_qk_norm", False), "QK-norm"),
    ("clip_qkv", lambda c: getattr(c, "clip_qkv", None) is None, "q/k/v clipping"),
    ("use_logn_attn", lambda c: not getattr(c, "use_logn_attn", False), "log-n query scaling"),
    ("use_attn_result", lambda c: not c.use_attn_result, "per-head results (hook_result)"),
    (
        "ungroup_grouped_query_attention",
        lambda c: not getattr(c, "ungroup_grouped_query_attention", False),
        "ungrouped GQA",
    ),
    ("use_dynamic_ntk_rope", lambda c: not getattr(c, "use_dynamic_ntk_rope", False), "length-dependent rotary"),
    ("use_attention_sinks", lambda c: not getattr(c, "use_attention_sinks", False), "attention sinks"),
    ("load_in_4bit", lambda c: not getattr(c, "load_in_4bit", False), "4-bit weights"),
)


def _hooked(module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def fused_blockers(block, layer: int) -> list[str]:
    """Why ``block`` cannot run as the fused block (empty: it can): config fields, module types, and
    hooks (or modules spliced in place of hook points) that the fused path would not call."""
    if type(block) is not TransformerBlock:
        return [f"block type {type(block).__name__}"]
    cfg = block.cfg
    out = [f"cfg.{f}={getattr(cfg, f, None)!r} ({why})" for f, ok, why in _REQUIREMENTS if not ok(cfg)]
    attn, mlp = block.attn, getattr(block, "mlp", None)
    if type(attn) not in (Attention, GroupedQueryAttention):
        out.append(f"attention type {type(attn).__name__}")
    if getattr(attn, "q_norm", None) is not None or getattr(attn, "k_norm", None) is not None:
        out.append("QK-norm modules")
    if not cfg.attn_only and type(mlp) not in (GatedMLP, MLP):
        out.append(f"MLP type {type(mlp).__name__}")
    if not cfg.attn_only and cfg.is_layer_norm_activation():
        out.append(f"cfg.act_fn={cfg.act_fn!r} (an MLP with a norm inside)")
    for m in (block, attn, mlp):
        if m is not None and _hooked(m):
            out.append(f"a hook on the {type(m).__name__} module")
    for name, m in block.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf.startswith("hook_") and (type(m) is not HookPoint or _hooked(m)):
            out.append(f"blocks.{layer}.{name} is hooked or replaced (the fused path calls only some hooks)")
            break
    return out


@dataclass(frozen=True)
class PackedQKV:
    """``[W_Q | W_K | W_V]`` of one layer as a ``[d_model, (n_heads + 2 n_kv) · d_head]`` matrix and
    its bias, so the three projections are one matrix product (GQA: the ``n_kv`` key/value heads)."""

    weight: Tensor
    bias: Tensor
    n_q: int  # n_heads · d_head
    n_kv: int  # key/value heads


def pack_qkv(attn) -> PackedQKV:
    gqa = isinstance(attn, GroupedQueryAttention)
    W_K, W_V = (attn._W_K, attn._W_V) if gqa else (attn.W_K, attn.W_V)
    b_K, b_V = (attn._b_K, attn._b_V) if gqa else (attn.b_K, attn.b_V)
    mats = [W.permute(1, 0, 2).reshape(W.shape[1], -1) for W in (attn.W_Q, W_K, W_V)]
    return PackedQKV(
        torch.cat(mats, 1).contiguous(),
        torch.cat([attn.b_Q.reshape(-1), b_K.reshape(-1), b_V.reshape(-1)]),
        attn.W_Q.shape[0] * attn.W_Q.shape[2],
        W_K.shape[0],
    )


def rotate_keys(attn, keys: Float[Tensor, "n pos kv d_head"]) -> Float[Tensor, "n pos kv d_head"]:
    """Keys as the attention uses them: rotated at their own positions (rotary), else unchanged
    (TransformerLens' cache holds them unrotated)."""
    if attn.cfg.positional_embedding_type == "rotary":
        return attn.apply_rotary(keys, 0, None)
    return keys


def _gated_mlp(mlp: GatedMLP, x: Tensor) -> Tensor:
    """``GatedMLP.forward`` with its hook points, without the weight copies:
    ``(act(x W_gate) ⊙ x W_in + b_in) W_out + b_out``."""
    pre_act = mlp.hook_pre(x @ mlp.W_gate)
    pre_linear = mlp.hook_pre_linear(x @ mlp.W_in)
    post = mlp.hook_post(mlp.act_fn(pre_act) * pre_linear + mlp.b_in)
    return torch.addmm(mlp.b_out, post.reshape(-1, post.shape[-1]), mlp.W_out).view(*x.shape[:-1], -1)


def _apply_mlp(block, x: Tensor) -> Tensor:
    """``TransformerBlock.apply_mlp``: MLP, post-MLP norm when configured, ``hook_mlp_out``."""
    out = _gated_mlp(block.mlp, x) if type(block.mlp) is GatedMLP else block.mlp(x)
    if block.cfg.use_normalization_before_and_after:
        out = block.ln2_post(out)
    return block.hook_mlp_out(out)


def _attention(
    attn,
    x: Float[Tensor, "b w d_model"],
    packed: PackedQKV,
    prefix_k: Optional[Tensor],
    prefix_v: Optional[Tensor],
    start: int,
    only_last: bool,
) -> Float[Tensor, "b q d_model"]:
    """Attention of positions ``start..T-1`` (or only ``T-1``) against the rotated prefix keys and
    values ``[b, start, n_kv, d_head]`` and the new ones."""
    b, w, m = x.shape
    cfg = attn.cfg
    n, h = cfg.n_heads, cfg.d_head
    n_kv = packed.n_kv
    flat = x.reshape(b * w, m)
    if only_last and w > 1:
        kv = torch.addmm(packed.bias[packed.n_q :], flat, packed.weight[:, packed.n_q :]).view(b, w, 2, n_kv, h)
        q = torch.addmm(packed.bias[: packed.n_q], x[:, -1], packed.weight[:, : packed.n_q]).view(b, 1, n, h)
        q_start = start + w - 1
    else:
        qkv = torch.addmm(packed.bias, flat, packed.weight)
        q = qkv[:, : packed.n_q].view(b, w, n, h)
        kv = qkv[:, packed.n_q :].view(b, w, 2, n_kv, h)
        q_start = start
    k, v = kv[:, :, 0], kv[:, :, 1]
    if cfg.positional_embedding_type == "rotary" and q_start == start:
        # queries and keys share positions: one rotary call over their heads side by side
        qk = attn.apply_rotary(qkv[:, : packed.n_q + n_kv * h].view(b, w, n + n_kv, h), start, None)
        q, k = qk[:, :, :n], qk[:, :, n:]
    elif cfg.positional_embedding_type == "rotary":
        q = attn.apply_rotary(q, q_start, None)
        k = attn.apply_rotary(k, start, None)
    if prefix_k is not None:
        k = torch.cat([prefix_k, k], 1)
        v = torch.cat([prefix_v, v], 1)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [b, heads, pos, h]
    p_q, T = q.shape[2], k.shape[2]
    q_pos = torch.arange(q_start, q_start + p_q, device=x.device)
    k_pos = torch.arange(T, device=x.device)
    allowed = k_pos[None, :] <= q_pos[:, None]
    if attn.attn_type == "local":
        allowed = allowed & (k_pos[None, :] > q_pos[:, None] - cfg.window_size)
    scale = attn.attn_scale
    cap = cfg.attn_scores_soft_cap
    if cap is not None and cap > 0:
        g = n // n_kv  # query head i reads key/value head i // g (TransformerLens' repeat_interleave)
        scores = (q.reshape(b, n_kv, g * p_q, h) @ k.transpose(-1, -2)).view(b, n_kv, g, p_q, T) / scale
        scores = apply_softcap(scores, cap).masked_fill(~allowed, float("-inf"))
        z = (scores.softmax(-1).view(b, n_kv, g * p_q, T) @ v).view(b, n, p_q, h)
    else:
        z = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=1.0 / float(scale), enable_gqa=n_kv != n)
    z = attn.hook_z(z.transpose(1, 2))  # [b, q, heads, d_head]
    return torch.addmm(attn.b_O, z.reshape(b * p_q, n * h), attn.W_O.reshape(n * h, -1)).view(b, p_q, -1)


def fused_block(
    block,
    resid: Float[Tensor, "b w d_model"],
    packed: PackedQKV,
    prefix_k: Optional[Tensor],
    prefix_v: Optional[Tensor],
    start: int,
    *,
    only_last: bool = False,
) -> Float[Tensor, "b q d_model"]:
    """``TransformerBlock.forward`` of positions ``start..T-1`` (``only_last``: the output of
    position ``T-1`` only, keys and values still from every position)."""
    cfg = block.cfg
    resid_pre = block.hook_resid_pre(resid)
    attn_out = _attention(block.attn, block.ln1(resid_pre), packed, prefix_k, prefix_v, start, only_last)
    if only_last:
        resid_pre = resid_pre[:, -1:]
    if cfg.use_normalization_before_and_after:
        attn_out = block.ln1_post(attn_out)
    attn_out = block.hook_attn_out(attn_out)
    if cfg.attn_only:
        return block.hook_resid_post(resid_pre + attn_out)
    if cfg.parallel_attn_mlp:
        mlp_in = block.hook_mlp_in(resid_pre.clone()) if cfg.use_hook_mlp_in else resid_pre
        return block.hook_resid_post(resid_pre + attn_out + _apply_mlp(block, block.ln2(mlp_in)))
    resid_mid = block.hook_resid_mid(resid_pre + attn_out)
    mlp_in = block.hook_mlp_in(resid_mid.clone()) if cfg.use_hook_mlp_in else resid_mid
    return block.hook_resid_post(resid_mid + _apply_mlp(block, block.ln2(mlp_in)))


__all__ = ["PackedQKV", "fused_block", "fused_blockers", "pack_qkv", "rotate_keys"]
