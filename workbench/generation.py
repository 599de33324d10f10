"""KV-cached decoding that keeps weights contiguous.

TransformerLens' forward transposes and copies the gated-MLP and unembedding weights on every call
(``W_gate.T.contiguous()``, ``W_U.T.contiguous()``); in token-by-token decoding that copy dominates.
``Decoder`` runs the same computation, block by block, through the model's own attention modules,
norms and hook points (so probes and steers fire exactly as in ``model(...)``), but with
transposed weights prepared once and reused, and with the unembedding applied to the last
position only.
"""

import weakref
from dataclasses import dataclass
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.components.mlps.gated_mlp import GatedMLP

_FAST_BLOCK_OFF = (
    "use_attn_in", "use_split_qkv_input", "parallel_attn_mlp", "attn_only",
    "use_normalization_before_and_after", "use_hook_mlp_in",
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


_TRANSPOSED = _Transposed()


def _gated_mlp(mlp: GatedMLP, x: Tensor) -> Tensor:
    """GatedMLP.forward with cached contiguous transposes; same hook points, same math."""
    pre_act = mlp.hook_pre(F.linear(x, _TRANSPOSED.get(mlp.W_gate)))
    pre_linear = mlp.hook_pre_linear(F.linear(x, _TRANSPOSED.get(mlp.W_in)))
    post_act = mlp.hook_post(mlp.act_fn(pre_act) * pre_linear + mlp.b_in)
    return F.linear(post_act, _TRANSPOSED.get(mlp.W_out), mlp.b_out)


def _block_forward(block, resid: Tensor, entry, attention_mask) -> Tensor:
    """TransformerBlock.forward for pre-norm blocks, with the fast gated MLP."""
    resid_pre = block.hook_resid_pre(resid)
    normed = block.ln1(resid_pre)
    attn_out = block.attn(query_input=normed, key_input=normed, value_input=normed,
                          past_kv_cache_entry=entry, attention_mask=attention_mask)
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

    def __init__(self, model, batch_size: int) -> None:
        self.model = model
        self.fast = _fast_blocks_ok(model)
        self.cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, batch_size)

    def step(self, tokens: Int[Tensor, "batch pos"], attention_mask: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch d_vocab"]:
        model = self.model
        residual, _, shortformer, full_mask = model.input_to_embed(
            tokens, attention_mask=attention_mask, past_kv_cache=self.cache
        )
        for i, block in enumerate(model.blocks):
            if self.fast:
                residual = _block_forward(block, residual, self.cache[i], full_mask)
            else:
                residual = block(residual, past_kv_cache_entry=self.cache[i],
                                 shortformer_pos_embed=shortformer, attention_mask=full_mask)
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
    dec = Decoder(model, batch)
    gen = torch.Generator(device="cpu").manual_seed(sampling.seed)
    full_mask = attention_mask
    offset = 0
    chunk, chunk_mask = tokens, attention_mask
    out: List[Tensor] = []
    step_logits: List[Tensor] = []
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
