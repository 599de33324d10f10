"""KV-cached decoding: the forward pass of ``HookedTransformer``, one chunk at a time.

``Decoder.step`` feeds the prompt, then one token per step, and returns the logits at each chunk's
last column. It runs the model's own modules (embeddings, norms, hook points), so probes and steers
fire exactly as in ``model(...)``; two parts are fused for speed where the config allows it:

* **The block** (``_block_forward``) mirrors ``TransformerBlock.forward`` for pre-norm blocks,
  sequential or parallel (``parallel_attn_mlp``, GPT-J/NeoX: ``h + attn(ln1 h) + mlp(ln2 h)``), with
  or without the Gemma-2 post-norms (``use_normalization_before_and_after``:
  ``h + ln1_post(attn(ln1 h))``), attention-only or not. The gated MLP is applied as
  ``(act(x W_gate) ⊙ x W_in + b_in) W_out + b_out`` straight from the parameters; TransformerLens copies
  ``W.T.contiguous()`` of each weight on every call instead.
* **The attention** (``_attention``) is causal softmax attention against pre-allocated, already
  rotated key/value buffers: ``softmax(mask(softcap(q kᵀ / attn_scale))) v`` with TransformerLens'
  own rotary tables and position ids, its ``attn_scale`` (which holds ``use_attn_scale`` and
  ``scale_attn_by_inverse_layer_idx``), GQA head grouping, the score soft-cap
  ``c·tanh(s/c)`` of ``attn_scores_soft_cap`` (Gemma-2), and the sliding window of local layers
  (``attn_types``/``window_size``: key column > query column − window, as TransformerLens masks).

Every config field that changes the computation is either reproduced, or listed in
``_BLOCK_REQUIREMENTS``/``_ATTN_REQUIREMENTS``; a layer whose config is not covered runs through
TransformerLens' own block or attention module (with its own KV cache), never through a fused
approximation. ``decoder_plan(model)`` says which path each layer takes and why.

Nothing is cached between calls: the fused paths read the parameters at every step, so weights
edited in place, through ``.data`` or by replacing a ``Parameter`` are always the ones used.
The logits come from ``workbench.readout`` (final norm, unembedding, output soft-cap).

This module is longer than 400 lines on purpose: the fused decoder and the table of config fields it
reproduces or falls back on must stay side by side, so that no path can drift from the other.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.components import Attention, GroupedQueryAttention
from transformer_lens.components.mlps.gated_mlp import GatedMLP
from transformer_lens.components.transformer_block import TransformerBlock
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities.activation_functions import apply_softcap
from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

from .backends import as_backend
from .readout import final_norm, unembed_normed
from .validation import check_fields, check_float, check_int


@dataclass(frozen=True)
class _Requirement:
    """A config field the fused path does not reproduce: ``ok(cfg)`` is False when it is set."""

    field: str
    ok: Callable[[object], bool]
    why: str


def _off(name: str) -> Callable[[object], bool]:
    return lambda cfg: not getattr(cfg, name, False)


_BLOCK_REQUIREMENTS = (
    _Requirement("use_attn_in", _off("use_attn_in"), "per-head attention inputs"),
    _Requirement("use_split_qkv_input", _off("use_split_qkv_input"), "separate q/k/v inputs"),
    _Requirement(
        "original_architecture",
        lambda cfg: cfg.original_architecture not in POST_NORM_ARCHITECTURES,
        "post-norm block (OLMo 2/3: ln1/ln2 after the sublayers)",
    ),
    _Requirement(
        "positional_embedding_type",
        lambda cfg: cfg.positional_embedding_type != "shortformer",
        "shortformer positions are added to every attention input",
    ),
)

_ATTN_REQUIREMENTS = (
    _Requirement(
        "positional_embedding_type",
        lambda cfg: cfg.positional_embedding_type in ("rotary", "standard"),
        "only rotary or absolute positions",
    ),
    _Requirement("use_qk_norm", _off("use_qk_norm"), "QK-norm"),
    _Requirement("clip_qkv", lambda cfg: getattr(cfg, "clip_qkv", None) is None, "q/k/v clipping"),
    _Requirement("use_logn_attn", _off("use_logn_attn"), "log-n query scaling"),
    _Requirement("use_attn_result", _off("use_attn_result"), "per-head results (hook_result)"),
    _Requirement("ungroup_grouped_query_attention", _off("ungroup_grouped_query_attention"), "ungrouped GQA"),
    _Requirement("use_dynamic_ntk_rope", _off("use_dynamic_ntk_rope"), "rotary tables that change with length"),
    _Requirement("use_attention_sinks", _off("use_attention_sinks"), "attention sinks"),
    _Requirement("load_in_4bit", _off("load_in_4bit"), "4-bit weights"),
)

# Hook points inside an attention module. The fused attention fires none of them, so a layer whose
# attention carries a hook (or a module spliced in their place, e.g. a SAELens SAE) runs through
# TransformerLens' attention.
_ATTN_HOOKS = (
    "hook_q",
    "hook_k",
    "hook_v",
    "hook_rot_q",
    "hook_rot_k",
    "hook_attn_scores",
    "hook_pattern",
    "hook_z",
    "hook_result",
)


def _unmet(requirements, cfg) -> list[str]:
    return [f"cfg.{r.field}={getattr(cfg, r.field, None)!r} ({r.why})" for r in requirements if not r.ok(cfg)]


def _has_hooks(module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def _block_blockers(block) -> list[str]:
    """Why ``block`` cannot run through ``_block_forward`` (empty: it can)."""
    if type(block) is not TransformerBlock:
        return [f"block type {type(block).__name__}"]
    out = _unmet(_BLOCK_REQUIREMENTS, block.cfg)
    if _has_hooks(block):
        out.append("a hook on the block module itself")
    return out


def _attn_static_blockers(attn) -> list[str]:
    """Config and module type reasons for TransformerLens' attention (fixed for a generate call)."""
    if type(attn) not in (Attention, GroupedQueryAttention):
        return [f"attention type {type(attn).__name__}"]
    out = _unmet(_ATTN_REQUIREMENTS, attn.cfg)
    if getattr(attn, "q_norm", None) is not None or getattr(attn, "k_norm", None) is not None:
        out.append(f"cfg.original_architecture={attn.cfg.original_architecture!r} (QK-norm modules)")
    return out


def _attn_hooked(attn) -> bool:
    """True when the attention module or one of its hook points carries a hook, or a hook point was
    replaced by another module (the fused attention would skip it)."""
    if _has_hooks(attn):
        return True
    for name in _ATTN_HOOKS:
        hp = getattr(attn, name, None)
        if hp is None:
            continue
        if type(hp) is not HookPoint or _has_hooks(hp):
            return True
    return False


def decoder_plan(model) -> list[str]:
    """Which path each layer takes in ``Decoder`` right now (hooks included), and why: one line per
    layer, ``"fused block, fused attention"`` or the config fields that send it to TransformerLens."""
    lines = []
    for i, block in enumerate(model.blocks):
        blockers = _block_blockers(block)
        if blockers:
            lines.append(f"layer {i}: TransformerLens block ({'; '.join(blockers)})")
            continue
        attn_why = _attn_static_blockers(block.attn) + (
            ["hooks on attention internals"] if _attn_hooked(block.attn) else []
        )
        attn = "fused attention" if not attn_why else f"TransformerLens attention ({'; '.join(attn_why)})"
        lines.append(f"layer {i}: fused block, {attn}")
    return lines


def _check_decodable(model) -> None:
    """Refuse configs that cannot be decoded token by token at all."""
    cfg = model.cfg
    if getattr(cfg, "attention_dir", "causal") != "causal":
        raise ValueError(
            f"generation needs causal attention, but cfg.attention_dir={cfg.attention_dir!r} for {cfg.model_name}"
        )
    if cfg.positional_embedding_type == "relative_positional_bias":
        raise ValueError("generation does not support cfg.positional_embedding_type='relative_positional_bias' (T5)")


# ---------------------------------------------------------------- fused pieces
def _gated_mlp(mlp: GatedMLP, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
    """``GatedMLP.forward`` with the same hook points and math, without TransformerLens' per-call
    ``W.T.contiguous()`` copies: ``(act(x W_gate) ⊙ (x W_in) + b_in) W_out + b_out``."""
    pre_act = mlp.hook_pre(x @ mlp.W_gate)
    pre_linear = mlp.hook_pre_linear(x @ mlp.W_in)
    post_act = mlp.hook_post(mlp.act_fn(pre_act) * pre_linear + mlp.b_in)
    return torch.addmm(mlp.b_out, post_act.reshape(-1, post_act.shape[-1]), mlp.W_out).view(*x.shape[:-1], -1)


def _apply_mlp(block, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
    """``TransformerBlock.apply_mlp``: the MLP, the post-MLP norm when configured, ``hook_mlp_out``."""
    mlp = block.mlp
    fused = type(mlp) is GatedMLP and not mlp.cfg.is_layer_norm_activation() and not _has_hooks(mlp)
    out = _gated_mlp(mlp, x) if fused else mlp(x)
    if block.cfg.use_normalization_before_and_after:
        out = block.ln2_post(out)
    return block.hook_mlp_out(out)


class _KV:
    """Pre-allocated key/value buffers ``[batch, kv_heads, max_pos, d_head]`` (keys stored rotated)."""

    def __init__(self, batch: int, n_kv: int, max_pos: int, d_head: int, dtype, device) -> None:
        self.k = torch.empty(batch, n_kv, max_pos, d_head, dtype=dtype, device=device)
        self.v = torch.empty_like(self.k)
        self.n = 0

    def append(self, k: Tensor, v: Tensor):
        p = k.shape[2]
        if self.n + p > self.k.shape[2]:
            raise RuntimeError(f"KV buffer of {self.k.shape[2]} positions is full ({self.n} used, {p} more asked)")
        self.k[:, :, self.n : self.n + p] = k
        self.v[:, :, self.n : self.n + p] = v
        self.n += p
        return self.k[:, :, : self.n], self.v[:, :, : self.n]


@dataclass(frozen=True)
class _StepMask:
    """Which keys each query of the chunk attends to: ``allowed[b, q, k]``; ``empty[b, q]`` marks
    queries with no allowed key (left padding), whose output TransformerLens sets to 0 (its softmax
    of an all −∞ row is NaN, replaced by 0)."""

    allowed: Bool[Tensor, "batch pos key"]
    empty: Bool[Tensor, "batch pos"]


def _step_mask(full_mask: Tensor, offset: int, p: int, window: Optional[int]) -> _StepMask:
    """TransformerLens' ``apply_causal_mask`` in column space: key column ≤ query column, and for a
    local layer key column > query column − ``window``; only keys with ``attention_mask`` 1."""
    total = full_mask.shape[1]
    q_col = torch.arange(offset, offset + p, device=full_mask.device)
    k_col = torch.arange(total, device=full_mask.device)
    ok = k_col[None, :] <= q_col[:, None]
    if window is not None:
        ok = ok & (k_col[None, :] > q_col[:, None] - window)
    allowed = ok[None] & full_mask.bool()[:, None, :]
    empty = ~allowed.any(-1)
    # an empty row attends to its own column so the fused kernel stays finite; its output is zeroed
    allowed = allowed | (empty[..., None] & (k_col[None, :] == q_col[:, None])[None])
    return _StepMask(allowed, empty)


def _attention(attn, x: Tensor, kv: _KV, offset: int, full_mask: Tensor, mask: _StepMask) -> Tensor:
    """Causal self-attention of the new chunk ``x`` against the cache, as TransformerLens computes it
    (same rotary tables and position ids, scale, soft-cap and mask), reading the weights as they are
    now: ``q = x W_Q + b_Q`` per head (a batched matmul over heads, no weight copy), then
    ``z = softmax(mask(softcap(q kᵀ / attn_scale))) v`` and ``z W_O + b_O``."""
    b, p, m = x.shape
    cfg = attn.cfg
    n, h = cfg.n_heads, cfg.d_head
    gqa = isinstance(attn, GroupedQueryAttention)
    W_K, W_V = (attn._W_K, attn._W_V) if gqa else (attn.W_K, attn.W_V)
    b_K, b_V = (attn._b_K, attn._b_V) if gqa else (attn.b_K, attn.b_V)
    n_kv = W_K.shape[0]
    flat = x.reshape(b * p, m)

    def project(W: Tensor, bias: Tensor) -> Tensor:  # [heads, d_model, d_head] -> [batch, pos, heads, d_head]
        out = torch.baddbmm(bias[:, None, :], flat.expand(W.shape[0], -1, -1), W)
        return out.view(W.shape[0], b, p, h).permute(1, 2, 0, 3)

    q, k, v = project(attn.W_Q, attn.b_Q), project(W_K, b_K), project(W_V, b_V)
    if cfg.positional_embedding_type == "rotary":
        q = attn.apply_rotary(q, offset, full_mask)
        k = attn.apply_rotary(k, offset, full_mask)
    keys, values = kv.append(k.transpose(1, 2), v.transpose(1, 2))
    q = q.transpose(1, 2)  # [b, n, p, h]
    scale = float(attn.attn_scale)
    cap = cfg.attn_scores_soft_cap
    if cap is not None and cap > 0:
        g = n // n_kv  # query head i reads key/value head i // g (TransformerLens' repeat_interleave)
        scores = (q.reshape(b, n_kv, g * p, h) @ keys.transpose(-1, -2)).view(b, n_kv, g, p, -1) / scale
        scores = apply_softcap(scores, cap)
        scores = scores.masked_fill(~mask.allowed[:, None, None], float("-inf"))
        z = (scores.softmax(-1).view(b, n_kv, g * p, -1) @ values).view(b, n, p, h)
    else:
        z = F.scaled_dot_product_attention(
            q, keys, values, attn_mask=mask.allowed[:, None], scale=1.0 / scale, enable_gqa=n_kv != n
        )
    z = z.masked_fill(mask.empty[:, None, :, None], 0.0)
    z = z.transpose(1, 2).reshape(b * p, n * h)
    return torch.addmm(attn.b_O, z, attn.W_O.reshape(n * h, -1)).view(b, p, -1)


def _block_forward(block, resid: Tensor, attend: Callable[[Tensor], Tensor]) -> Tensor:
    """``TransformerBlock.forward`` for pre-norm blocks (``_BLOCK_REQUIREMENTS`` hold), sequential or
    parallel, with or without post-norms, attention-only or not; ``attend`` is the attention."""
    cfg = block.cfg
    resid_pre = block.hook_resid_pre(resid)
    attn_out = attend(block.ln1(resid_pre))
    if cfg.use_normalization_before_and_after:
        attn_out = block.ln1_post(attn_out)
    attn_out = block.hook_attn_out(attn_out)
    if cfg.parallel_attn_mlp:
        mlp_in = block.hook_mlp_in(resid_pre.clone()) if cfg.use_hook_mlp_in else resid_pre
        return block.hook_resid_post(resid_pre + attn_out + _apply_mlp(block, block.ln2(mlp_in)))
    if cfg.attn_only:
        return block.hook_resid_post(resid_pre + attn_out)
    resid_mid = block.hook_resid_mid(resid_pre + attn_out)
    mlp_in = block.hook_mlp_in(resid_mid.clone()) if cfg.use_hook_mlp_in else resid_mid
    return block.hook_resid_post(resid_mid + _apply_mlp(block, block.ln2(mlp_in)))


def _unembed_hooked(model) -> bool:
    u = model.unembed
    return _has_hooks(u) or any(_has_hooks(hp) or type(hp) is not HookPoint for hp in (u.hook_in, u.hook_out))


class Decoder:
    """Incremental forward with KV caches (fused buffers for fused-attention layers, TransformerLens'
    cache entries for the others).

    ``step(tokens, attention_mask)`` feeds a chunk (the prompt, then one token per step) and returns
    the logits at the chunk's last column, ``[batch, d_vocab]``. Fused attention needs
    ``max_positions`` (the buffers' length); without it every layer uses TransformerLens' attention."""

    def __init__(self, model, batch_size: int, max_positions: Optional[int] = None) -> None:
        _check_decodable(model)
        self.model = model
        cfg = model.cfg
        self.cache = TransformerLensKeyValueCache.init_cache(cfg, cfg.device, batch_size)
        self.fused_block = [not _block_blockers(b) for b in model.blocks]
        # Layers whose attention internals are hooked (attn.pattern, attn.z, ...) go through
        # TransformerLens' attention module so those hooks fire; the others use the fused kernel.
        self.kv: list[Optional[_KV]] = [None] * cfg.n_layers
        if max_positions is not None:
            n_kv = cfg.n_key_value_heads or cfg.n_heads
            for i, block in enumerate(model.blocks):
                if self.fused_block[i] and not _attn_static_blockers(block.attn) and not _attn_hooked(block.attn):
                    self.kv[i] = _KV(batch_size, n_kv, max_positions, cfg.d_head, cfg.dtype, cfg.device)
        self.offset = 0

    def step(
        self, tokens: Int[Tensor, "batch pos"], attention_mask: Int[Tensor, "batch pos"]
    ) -> Float[Tensor, "batch d_vocab"]:
        model, cfg = self.model, self.model.cfg
        # HookedTransformer.input_to_embed with a cache, with the position offset kept here (the fused
        # layers do not fill TransformerLens' cache entries, from which it would derive the offset).
        full_mask = self.cache.append_attention_mask(attention_mask)
        if cfg.use_hook_tokens:
            tokens = model.hook_tokens(tokens)
        embed = model.hook_embed(model.embed(tokens))
        residual, shortformer = model.get_residual(
            embed, self.offset, attention_mask=full_mask, tokens=tokens, return_shortformer_pos_embed=True
        )
        p = tokens.shape[1]
        masks: dict[Optional[int], _StepMask] = {}
        for i, block in enumerate(model.blocks):
            kv = self.kv[i]
            if not self.fused_block[i]:
                residual = block(
                    residual,
                    past_kv_cache_entry=self.cache[i],
                    shortformer_pos_embed=shortformer,
                    attention_mask=full_mask,
                )
                continue
            if kv is not None:
                if _attn_hooked(block.attn):
                    raise RuntimeError(
                        f"a hook was added to blocks.{i}.attn during generation; register attention-internal "
                        "probes/steers before generating so that layer runs through TransformerLens' attention"
                    )
                window = cfg.window_size if block.attn.attn_type == "local" else None
                if window not in masks:
                    masks[window] = _step_mask(full_mask, self.offset, p, window)
                mask = masks[window]

                def attend(x, attn=block.attn, kv=kv, mask=mask):
                    return _attention(attn, x, kv, self.offset, full_mask, mask)
            else:

                def attend(x, attn=block.attn, entry=self.cache[i]):
                    return attn(
                        query_input=x,
                        key_input=x,
                        value_input=x,
                        past_kv_cache_entry=entry,
                        attention_mask=full_mask,
                    )

            residual = _block_forward(block, residual, attend)
        self.offset += p
        normed = final_norm(model, residual[:, -1:, :])
        weight_t = None if _unembed_hooked(model) else model.unembed.W_U.T
        return unembed_normed(model, normed, weight_t=weight_t)[:, 0]


@dataclass(frozen=True)
class SamplingConfig:
    """Greedy when ``temperature == 0``; otherwise softmax(logits / temperature), restricted to the
    ``top_k`` largest logits, then to the smallest set whose probability reaches ``top_p`` (nucleus
    sampling, Holtzman et al. 2020)."""

    temperature: float = 0.0  # 0 = greedy (argmax); > 0 divides the logits before sampling
    top_k: Optional[int] = None  # None = no top-k cut
    top_p: Optional[float] = None  # None = no nucleus cut; in (0, 1]
    seed: int = 0  # seeds the sampler's own torch.Generator (the global RNG is untouched)

    def __post_init__(self) -> None:
        check_fields(self, temperature={"kind": "float", "min": 0.0}, seed={"kind": "int"})
        if self.top_k is not None:
            check_int("SamplingConfig.top_k", self.top_k, min=1)
        if self.top_p is not None:
            check_float("SamplingConfig.top_p", self.top_p, min=0.0, max=1.0, min_open=True)

    def sample(self, logits: Float[Tensor, "batch vocab"], generator: torch.Generator) -> Int[Tensor, " batch"]:
        if self.temperature == 0:
            return logits.argmax(-1)
        logits = logits.float() / self.temperature
        if self.top_k is not None:
            kth = torch.topk(logits, min(self.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p is not None and self.top_p < 1:
            sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
            probs = sorted_logits.softmax(-1)
            drop = probs.cumsum(-1) - probs > self.top_p
            sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_logits)
        return torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]


def decode_loop(
    model,
    tokens: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"],
    max_new_tokens: int,
    sampling: SamplingConfig,
    *,
    eos_token_id: Optional[int],
    pad_token_id: int,
    before_chunk: Callable[[Tensor, int, int], None],
    keep_logits: bool = False,
    progress: bool = False,
):
    """Prefill the (left-padded) prompt, then decode ``max_new_tokens`` one at a time.

    ``before_chunk(full_attention_mask, offset, step)`` is called before every forward chunk, so the
    caller (the hook registry) knows the absolute positions the chunk covers. Returns the new token
    ids ``[batch, max_new_tokens]`` (pad after EOS), and the per-step logits if asked."""
    from tqdm.auto import tqdm

    batch = tokens.shape[0]
    longest = int(attention_mask.sum(1).max()) + max_new_tokens
    if longest > model.cfg.n_ctx:
        raise ValueError(
            f"the longest prompt plus max_new_tokens={max_new_tokens} is {longest} positions, more than the "
            f"model's context cfg.n_ctx={model.cfg.n_ctx}"
        )
    # workbench's fused Decoder for a HookedTransformer; the bridge's own forward for a TransformerBridge.
    dec = as_backend(model).decoder(batch, max_positions=tokens.shape[1] + max_new_tokens)
    gen = torch.Generator(device="cpu").manual_seed(sampling.seed)
    full_mask = attention_mask
    offset = 0
    chunk, chunk_mask = tokens, attention_mask
    out: list[Tensor] = []
    step_logits: list[Tensor] = []
    done = torch.zeros(batch, dtype=torch.bool)
    for step in tqdm(range(max_new_tokens), desc="generate", disable=not progress, leave=False):
        before_chunk(full_mask, offset, step)
        logits = dec.step(chunk, chunk_mask)
        if keep_logits:
            step_logits.append(logits.detach().clone())
        nxt = sampling.sample(logits, gen).to(tokens.device)
        nxt = torch.where(done.to(nxt.device), torch.full_like(nxt, pad_token_id), nxt)
        out.append(nxt)
        if eos_token_id is not None:
            done |= (nxt == eos_token_id).cpu()
        offset += chunk.shape[1]
        chunk = nxt[:, None]
        # A finished row keeps attending to nothing new: its later tokens are padding.
        chunk_mask = (~done).long()[:, None].to(tokens.device) if eos_token_id is not None else torch.ones_like(chunk)
        full_mask = torch.cat([full_mask, chunk_mask], dim=1)
        if eos_token_id is not None and bool(done.all()):
            break
    new = torch.stack(out, dim=1) if out else tokens.new_zeros((batch, 0))
    return new, (torch.stack(step_logits, dim=1) if keep_logits else None)
