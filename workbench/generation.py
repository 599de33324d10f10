"""KV-cached decoding that keeps weights contiguous.

TransformerLens' forward transposes and copies the gated-MLP and unembedding weights on every call
(``W_gate.T.contiguous()``, ``W_U.T.contiguous()``); in token-by-token decoding that copy dominates.
``Decoder`` runs the same computation, block by block, through the model's own attention modules,
norms and hook points (so probes and steers fire exactly as in ``model(...)``), but with
transposed weights prepared once and reused, and with the unembedding applied to the last
position only.
"""

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.components.mlps.gated_mlp import GatedMLP

_FAST_BLOCK_OFF = (
    "use_attn_in",
    "use_split_qkv_input",
    "parallel_attn_mlp",
    "attn_only",
    "use_normalization_before_and_after",
    "use_hook_mlp_in",
)


def _fast_blocks_ok(model) -> bool:
    cfg = model.cfg
    if any(getattr(cfg, k, False) for k in _FAST_BLOCK_OFF):
        return False
    if cfg.positional_embedding_type == "shortformer":
        return False
    from transformer_lens.components.transformer_block import POST_NORM_ARCHITECTURES

    return cfg.original_architecture not in POST_NORM_ARCHITECTURES


class _Transposed:
    """Contiguous transposed copies of weights, refreshed when a weight changes (version counter)."""

    def __init__(self) -> None:
        self._store: dict = {}

    def get(self, weight: Tensor) -> Tensor:
        key = (weight.data_ptr(), weight._version, tuple(weight.shape), weight.dtype)
        hit = self._store.get(id(weight))
        if hit is None or hit[0]() is not weight or hit[1] != key:
            ident = id(weight)
            ref = weakref.ref(weight, lambda _r, i=ident: self._store.pop(i, None))
            hit = (ref, key, weight.detach().T.contiguous())
            self._store[ident] = hit
        return hit[2]

    def _cached(self, weight: Tensor, tag: str, make) -> Tensor:
        key = (weight.data_ptr(), weight._version, tuple(weight.shape), weight.dtype)
        ident = (id(weight), tag)
        hit = self._store.get(ident)
        if hit is None or hit[0]() is not weight or hit[1] != key:
            ref = weakref.ref(weight, lambda _r, i=ident: self._store.pop(i, None))
            hit = (ref, key, make(weight.detach()))
            self._store[ident] = hit
        return hit[2]

    def heads_in(self, W: Tensor) -> Tensor:
        """``[n, d_model, d_head]`` -> ``[(n d_head), d_model]`` for ``F.linear``."""
        return self._cached(W, "in", lambda w: einops.rearrange(w, "n m h -> (n h) m").contiguous())

    def heads_out(self, W: Tensor) -> Tensor:
        """``[n, d_head, d_model]`` -> ``[d_model, (n d_head)]`` for ``F.linear``."""
        return self._cached(W, "out", lambda w: einops.rearrange(w, "n h m -> m (n h)").contiguous())


_TRANSPOSED = _Transposed()


def _gated_mlp(mlp: GatedMLP, x: Tensor) -> Tensor:
    """GatedMLP.forward with cached contiguous transposes; same hook points, same math."""
    pre_act = mlp.hook_pre(F.linear(x, _TRANSPOSED.get(mlp.W_gate)))
    pre_linear = mlp.hook_pre_linear(F.linear(x, _TRANSPOSED.get(mlp.W_in)))
    post_act = mlp.hook_post(mlp.act_fn(pre_act) * pre_linear + mlp.b_in)
    return F.linear(post_act, _TRANSPOSED.get(mlp.W_out), mlp.b_out)


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


def _attn_hooked(attn) -> bool:
    return any(getattr(attn, h, None) is not None and len(getattr(attn, h)._forward_hooks) > 0 for h in _ATTN_HOOKS)


def _fast_attn_ok(model) -> bool:
    """Our own attention kernel covers standard causal self-attention (MHA or GQA, rotary or absolute
    positions, no soft-capping, local windows, QK-norm, logn or clipping)."""
    cfg = model.cfg
    if cfg.positional_embedding_type not in ("rotary", "standard"):
        return False
    off = (
        "use_hook_tokens",
        "attn_scores_soft_cap",
        "use_qk_norm",
        "use_logn_attn",
        "clip_qkv",
        "use_attn_result",
        "ungroup_grouped_query_attention",
        "use_dynamic_ntk_rope",
    )
    if any(getattr(cfg, k, None) not in (None, False, -1, -1.0, 0) for k in off):
        return False
    if getattr(cfg, "attn_types", None) and any(t != "global" for t in cfg.attn_types):
        return False
    return bool(cfg.use_attn_scale)


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


def _attention(attn, x: Tensor, kv: _KV, offset: int, full_mask: Tensor, allowed: Tensor) -> Tensor:
    """Causal self-attention of the new chunk ``x`` against the cache, as TransformerLens computes it
    (same rotary tables and position ids, same scale), in fewer kernels: one matmul per projection and
    PyTorch's fused ``scaled_dot_product_attention``."""
    b, p, _ = x.shape
    cfg = attn.cfg
    n, h = cfg.n_heads, cfg.d_head
    gqa = hasattr(attn, "_W_K")
    W_K, W_V = (attn._W_K, attn._W_V) if gqa else (attn.W_K, attn.W_V)
    b_K, b_V = (attn._b_K, attn._b_V) if gqa else (attn.b_K, attn.b_V)
    n_kv = W_K.shape[0]
    q = F.linear(x, _TRANSPOSED.heads_in(attn.W_Q), attn.b_Q.reshape(-1)).view(b, p, n, h)
    k = F.linear(x, _TRANSPOSED.heads_in(W_K), b_K.reshape(-1)).view(b, p, n_kv, h)
    v = F.linear(x, _TRANSPOSED.heads_in(W_V), b_V.reshape(-1)).view(b, p, n_kv, h)
    if cfg.positional_embedding_type == "rotary":
        q = attn.apply_rotary(q, offset, full_mask)
        k = attn.apply_rotary(k, offset, full_mask)
    keys, values = kv.append(k.transpose(1, 2), v.transpose(1, 2))
    z = F.scaled_dot_product_attention(
        q.transpose(1, 2),
        keys,
        values,
        attn_mask=allowed[:, None],
        scale=1.0 / float(attn.attn_scale),
        enable_gqa=n_kv != n,
    )
    z = z.transpose(1, 2).reshape(b, p, n * h)
    return F.linear(z, _TRANSPOSED.heads_out(attn.W_O), attn.b_O)


def _block_forward(block, resid: Tensor, entry, attention_mask, fast_attn=None) -> Tensor:
    """TransformerBlock.forward for pre-norm blocks, with the fast gated MLP (and, when the layer's
    attention internals carry no hooks, the fast attention)."""
    resid_pre = block.hook_resid_pre(resid)
    normed = block.ln1(resid_pre)
    if fast_attn is not None:
        attn_out = _attention(block.attn, normed, *fast_attn)
    else:
        attn_out = block.attn(
            query_input=normed,
            key_input=normed,
            value_input=normed,
            past_kv_cache_entry=entry,
            attention_mask=attention_mask,
        )
    attn_out = block.hook_attn_out(attn_out)
    resid_mid = block.hook_resid_mid(resid_pre + attn_out)
    mlp = block.mlp
    normed2 = block.ln2(resid_mid)
    use_fast = isinstance(mlp, GatedMLP) and not (mlp.cfg.is_layer_norm_activation() and mlp.hook_mid is not None)
    mlp_out = block.hook_mlp_out(_gated_mlp(mlp, normed2) if use_fast else mlp(normed2))
    return block.hook_resid_post(resid_mid + mlp_out)


class Decoder:
    """Incremental forward with a TransformerLens KV cache.

    ``step(tokens, attention_mask)`` feeds a chunk (the prompt, then one token per step) and returns
    the logits at the chunk's last column, ``[batch, d_vocab]``."""

    def __init__(self, model, batch_size: int, max_positions: Optional[int] = None) -> None:
        self.model = model
        self.fast = _fast_blocks_ok(model)
        self.cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, batch_size)
        # Layers whose attention internals are hooked (attn.pattern, attn.z, ...) go through
        # TransformerLens' own attention module so those hooks fire; the others use the fast kernel.
        cfg = model.cfg
        self.kv: list[Optional[_KV]] = [None] * cfg.n_layers
        if self.fast and max_positions is not None and _fast_attn_ok(model):
            n_kv = cfg.n_key_value_heads or cfg.n_heads
            for i, block in enumerate(model.blocks):
                if not _attn_hooked(block.attn):
                    self.kv[i] = _KV(batch_size, n_kv, max_positions, cfg.d_head, cfg.dtype, cfg.device)
        self.offset = 0

    def step(
        self, tokens: Int[Tensor, "batch pos"], attention_mask: Int[Tensor, "batch pos"]
    ) -> Float[Tensor, "batch d_vocab"]:
        model = self.model
        allowed = None
        if any(kv is not None for kv in self.kv):
            # Embed here: TransformerLens derives the position offset from its own cache entries,
            # which the fast layers do not fill.
            full_mask = self.cache.append_attention_mask(attention_mask)
            shortformer = None
            residual = model.hook_embed(model.embed(tokens))
            if model.cfg.positional_embedding_type == "standard":
                residual = residual + model.hook_pos_embed(model.pos_embed(tokens, self.offset, full_mask))
            p, total = tokens.shape[1], full_mask.shape[1]
            q_col = torch.arange(self.offset, self.offset + p, device=full_mask.device)
            k_col = torch.arange(total, device=full_mask.device)
            causal = k_col[None, :] <= q_col[:, None]
            # attend to real keys; a padding query attends to itself only (keeps its row finite)
            allowed = causal[None] & (full_mask.bool()[:, None, :] | (k_col[None, :] == q_col[:, None])[None])
        else:
            residual, _, shortformer, full_mask = model.input_to_embed(
                tokens, attention_mask=attention_mask, past_kv_cache=self.cache
            )
        for i, block in enumerate(model.blocks):
            if self.fast:
                kv = self.kv[i]
                if kv is not None and _attn_hooked(block.attn):
                    raise RuntimeError(
                        f"a hook was added to blocks.{i}.attn during generation; register attention-internal "
                        "probes/steers before generating so that layer runs through TransformerLens' attention"
                    )
                fast_attn = (kv, self.offset, full_mask, allowed) if kv is not None else None
                residual = _block_forward(block, residual, self.cache[i], full_mask, fast_attn)
            else:
                residual = block(
                    residual,
                    past_kv_cache_entry=self.cache[i],
                    shortformer_pos_embed=shortformer,
                    attention_mask=full_mask,
                )
        self.offset += tokens.shape[1]
        last = residual[:, -1:, :]
        if model.cfg.normalization_type is not None:
            last = model.ln_final(last)
        logits = F.linear(last, _TRANSPOSED.get(model.unembed.W_U), model.unembed.b_U)[:, 0]
        cap = getattr(model.cfg, "output_logits_soft_cap", -1.0)
        if cap and cap > 0:
            logits = cap * torch.tanh(logits / cap)
        return logits


@dataclass(frozen=True)
class SamplingConfig:
    """Greedy when ``temperature == 0``; otherwise temperature, then top-k, then top-p (nucleus)."""

    temperature: float = 0.0
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

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
    dec = Decoder(model, batch, max_positions=tokens.shape[1] + max_new_tokens)
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
