"""Activation patching that recomputes only what a patch can change: the corrupted run's keys and
values are reused for every earlier position.

Under causal attention a patch at (layer L, position s) changes nothing at positions < s, at any
layer, and nothing at layers < L. The patched forward pass therefore only has to compute positions
``s..T-1`` of blocks ``L..n_layers-1``, attending to the corrupted run's keys and values of
positions ``< s``: work ``(n_layers − L) · (T − s)`` positions per patch instead of
``(n_layers − L) · T`` (a ``start_at_layer`` restart) or ``n_layers · T`` (TransformerLens'
``transformer_lens.patching``, which runs the whole model per patch), about a quarter of the
restart on average.

**What is reused.** The per-layer entries of TransformerLens' own KV cache after one corrupted
forward pass (``model(corrupted, past_kv_cache=...)``): exactly what its attention appends — keys
before rotary, values, after any QK-norm or clipping — and the blocks run as TransformerLens'
``TransformerBlock.forward`` with a frozen cache entry, so rotary offsets, ALiBi rows, local
(sliding-window) masks, attention and output soft-caps, GQA, parallel attention/MLP and post-norms
follow the model's own code. Shortformer positions are passed to every block for the recomputed
positions.

**Schedule.** Patches that start at the same position ``s`` share one sweep over the blocks: the
rows (patch × prompt) of the patches at layer ℓ join the batch when the sweep reaches block ℓ, so a
block runs once per start position on every row that needs it (bounded by ``tokens_per_pass``; a
larger set is split into several sweeps). A joining row enters block ℓ with the corrupted
``resid_pre.ℓ[s:]``; for ``resid_pre`` its first position is replaced by the clean value, for
``attn_out``, ``mlp_out`` and the heads (``attn.z``) a registry steer writes the clean value at the
row's own position (and head) inside block ℓ — that block's attention at positions ``≥ s`` is
recomputed, which is what a head patch at (ℓ, s) needs. ``heads_all_pos`` patches every position
(start 0). After the last block only the last position is read out, and of it only the two logits
the metric needs (``workbench.readout.token_logits``).

``kv_reuse_blocker`` names the config for which this is not exact (bidirectional attention: earlier
positions see the patch; relative positional biases; non-standard blocks); there
``workbench.patching.activation`` falls back to the ``start_at_layer`` restart.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch
from jaxtyping import Int
from torch import Tensor
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry
from transformer_lens.components.transformer_block import TransformerBlock

from ..edits import EditContext
from ..registry import HookRegistry
from .fused import PackedQKV, fused_block, fused_blockers, pack_qkv, rotate_keys
from .metric import LogitDiffMetric
from .rules import recorded


def kv_reuse_blocker(model) -> Optional[str]:
    """The config field (or module) for which reusing the corrupted prefix's keys and values is
    not the patched forward pass, or None when it is exact."""
    cfg = model.cfg
    if getattr(cfg, "attention_dir", "causal") != "causal":
        return f"cfg.attention_dir={cfg.attention_dir!r} (earlier positions attend to the patched one)"
    if getattr(cfg, "positional_embedding_type", "standard") == "relative_positional_bias":
        return "cfg.positional_embedding_type='relative_positional_bias' (no KV cache for relative biases)"
    for i, block in enumerate(model.blocks):
        if type(block) is not TransformerBlock:
            return f"blocks.{i} is a {type(block).__name__}, not TransformerLens' TransformerBlock"
    return None


@dataclass(frozen=True)
class CorruptedRun:
    """What the patched runs reuse from one corrupted forward pass (all ``[n, T, ...]``)."""

    resid_pre: dict[int, Tensor]  # block input per join layer
    keys: list[Tensor]  # per layer: TransformerLens' cache entry keys [n, T, kv_heads, d_head]
    values: list[Tensor]  # per layer: cache entry values
    pos_embed: Optional[Tensor]  # shortformer positions [n, T, d_model] (added inside every block), else None


def record_corrupted(model, corrupted: Int[Tensor, "n pos"], join_layers: Sequence[int]) -> CorruptedRun:
    """One corrupted forward with TransformerLens' KV cache and probes at ``resid_pre`` of
    ``join_layers``."""
    cfg = model.cfg
    tokens = corrupted.to(cfg.device)
    n = tokens.shape[0]
    cache = TransformerLensKeyValueCache.init_cache(cfg, cfg.device, n)
    reg = HookRegistry(model)
    for L in join_layers:
        reg.probe(f"x{L}", f"resid_pre.{L}")
    with torch.no_grad(), reg:
        model(tokens, attention_mask=torch.ones_like(tokens), past_kv_cache=cache, stop_at_layer=cfg.n_layers)
    pos_embed = None
    if cfg.positional_embedding_type == "shortformer":
        with torch.no_grad():
            pos_embed = model.pos_embed(tokens)
    return CorruptedRun(
        resid_pre={L: recorded(reg, f"x{L}") for L in join_layers},
        keys=[e.past_keys for e in cache.entries],
        values=[e.past_values for e in cache.entries],
        pos_embed=pos_embed,
    )


@dataclass(frozen=True)
class JoinPatch:
    """Edit for the rows that join the sweep at this layer (the last ``k`` rows of the batch): their
    clean activations (for ``attn.z`` only head ``heads[r]`` of row r). The registry writes them at
    the masked positions only (the row's patched position, or every position)."""

    clean: Tensor  # [k, pos, ...] clean values of the joining rows, at the chunk's positions
    heads: Optional[Tensor] = None  # [k] head per joining row (attn.z)

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        k = self.clean.shape[0]
        if acts.shape[0] < k or acts.shape[1:] != self.clean.shape[1:]:
            raise ValueError(
                f"JoinPatch: clean values {tuple(self.clean.shape)} do not fit activations {tuple(acts.shape)}"
            )
        clean = self.clean.to(acts.device, acts.dtype)
        if self.heads is not None:
            onehot = torch.nn.functional.one_hot(self.heads, acts.shape[2]).bool().to(acts.device)
            clean = torch.where(onehot[:, None, :, None], clean, acts[-k:])
        return torch.cat([acts[:-k], clean], 0)


@dataclass(frozen=True)
class _Patch:
    layer: int
    index: int  # column of the grid's layer row (patch_index order)
    start: int  # first position that can change
    head: Optional[int]
    all_positions: bool  # heads_all_pos: every position patched


@dataclass(frozen=True)
class SweepPlan:
    """How each block runs in the sweeps: fused (``workbench.patching.fused``) or TransformerLens'
    own ``TransformerBlock.forward``; the prefix keys each one attends to (rotated for fused blocks,
    as TransformerLens' cache holds them for the others); whether the last block computes only the
    last position."""

    fused: list[bool]
    why: list[str]  # per layer: "" (fused) or why TransformerLens' block runs
    packed: dict[int, PackedQKV]
    keys: list[Tensor]
    values: list[Tensor]
    only_last: bool


def sweep_plan(model, run: CorruptedRun) -> SweepPlan:
    """The plan for this model as it is now (hooks included), before any patching steer is added."""
    fused, why, packed, keys = [], [], {}, []
    for L, block in enumerate(model.blocks):
        blockers = fused_blockers(block, L)
        fused.append(not blockers)
        why.append("; ".join(blockers))
        if not blockers:
            packed[L] = pack_qkv(block.attn)
            keys.append(rotate_keys(block.attn, run.keys[L]))
        else:
            keys.append(run.keys[L])
    return SweepPlan(fused, why, packed, keys, run.values, only_last=fused[-1])


def _prefix(keys: Tensor, values: Tensor, start: int, prompt_of: Tensor) -> tuple[Tensor, Tensor]:
    return keys[:, :start].index_select(0, prompt_of), values[:, :start].index_select(0, prompt_of)


def _sweep(
    model,
    group: list[_Patch],
    start: int,
    site: Optional[str],
    clean: dict[int, Tensor],
    run: CorruptedRun,
    plan: SweepPlan,
    metric: LogitDiffMetric,
    n: int,
) -> Tensor:
    """One sweep over blocks ``min(L)..n_layers-1`` at positions ``start..T-1`` for the patches of
    ``group`` (sorted by layer); returns the unnormalised LD of every row (patch-major, prompt-minor)."""
    dev = model.cfg.device
    n_layers = model.cfg.n_layers
    T = run.keys[0].shape[1]
    by_layer: dict[int, list[_Patch]] = defaultdict(list)
    for pt in group:
        by_layer[pt.layer].append(pt)
    first = group[0].layer
    prompts = torch.arange(n, device=dev)

    def width(L: int) -> int:  # positions the hooks of block L see
        return 1 if (L == n_layers - 1 and plan.only_last) else T - start

    reg = HookRegistry(model)
    rows_before = 0
    for L in sorted(by_layer):
        joining = by_layer[L]
        k = len(joining) * n
        if site is not None:
            rows = prompts.repeat(len(joining))
            vals = clean[L][rows, T - width(L) :]
            heads = None
            if joining[0].head is not None:
                heads = torch.tensor([pt.head for pt in joining], device=dev).repeat_interleave(n)
            mask = torch.zeros(rows_before + k, width(L), dtype=torch.bool)
            if joining[0].all_positions:
                mask[rows_before:] = True
            else:
                mask[rows_before:, 0] = True
            reg.steer(f"join{L}", f"{site}.{L}", JoinPatch(vals, heads), positions=mask)
        rows_before += k
    resid = torch.empty(0, T - start, model.cfg.d_model, device=dev, dtype=model.cfg.dtype)
    prompt_of = torch.empty(0, dtype=torch.long, device=dev)
    with torch.no_grad(), reg:
        for L in range(first, n_layers):
            joining = by_layer.get(L, [])
            if joining:
                rows = prompts.repeat(len(joining))
                x = run.resid_pre[L][rows, start:].to(dev)
                if site is None:  # resid_pre: the clean residual enters at the patched position
                    x = x.clone()
                    x[:, 0] = clean[L][rows, start].to(x.dtype)
                resid = torch.cat([resid, x], 0)
                prompt_of = torch.cat([prompt_of, rows])
            pk, pv = _prefix(plan.keys[L], plan.values[L], start, prompt_of) if start else (None, None)
            if plan.fused[L]:
                resid = fused_block(
                    model.blocks[L], resid, plan.packed[L], pk, pv, start, only_last=width(L) == 1 and start < T - 1
                )
            else:
                entry = None if pk is None else TransformerLensKeyValueCacheEntry(pk, pv, frozen=True)
                pos = None if run.pos_embed is None else run.pos_embed[prompt_of, start:]
                resid = model.blocks[L](resid, past_kv_cache_entry=entry, shortformer_pos_embed=pos)
    return metric.per_row_resid(model, resid[:, -1], prompt_of)


def kv_reuse_patch_lds(
    model,
    clean: dict[int, Tensor],
    run: CorruptedRun,
    metric: LogitDiffMetric,
    site: Optional[str],
    patches_by_layer: dict[int, list[tuple]],
    *,
    tokens_per_pass: int,
    progress: bool = False,
) -> dict[int, Tensor]:
    """Mean (over prompts) unnormalised LD of every patch, ``{layer: [n_patches]}``.

    ``clean[L]`` is the clean activation at ``{site}.L`` (``site`` None: ``resid_pre``, patched by
    replacing the block input); ``patches_by_layer[L]`` lists the patches of layer L as
    ``(position or None, head or None)``; a patch without a position patches every position.

    When the last block computes only the last position, a patch of ``attn_out``, ``mlp_out`` or a
    head of the last block at an earlier position reaches nothing that is read out: its LD is the
    corrupted run's, without a forward pass."""
    n, T = run.keys[0].shape[:2]
    plan = sweep_plan(model, run)
    last = model.cfg.n_layers - 1
    starts: dict[int, list[_Patch]] = defaultdict(list)
    out = {L: torch.empty(len(patches)) for L, patches in patches_by_layer.items()}
    for L, patches in patches_by_layer.items():
        for j, (p, h) in enumerate(patches):
            if site is not None and L == last and plan.only_last and p is not None and p < T - 1:
                out[L][j] = metric.ld_corrupted
                continue
            starts[0 if p is None else p].append(_Patch(L, j, 0 if p is None else p, h, p is None))
    from tqdm.auto import tqdm

    for s in tqdm(sorted(starts), desc="patching (start positions)", disable=not progress):
        todo = sorted(starts[s], key=lambda pt: (pt.layer, pt.index))
        per_sweep = max(1, tokens_per_pass // ((T - s) * n))
        for g in range(0, len(todo), per_sweep):
            group = todo[g : g + per_sweep]
            lds = _sweep(model, group, s, site, clean, run, plan, metric, n).view(len(group), n).mean(1).cpu()
            for pt, v in zip(group, lds):
                out[pt.layer][pt.index] = v
    return out


# ----------------------------------------------------------------------------- FLOP counts
def token_layer_flops(model) -> float:
    """Multiply-add FLOPs (2 per MAC) of one block on one position, without the attention over keys:
    the Q/K/V/O projections (GQA: ``n_key_value_heads`` for K and V) and the MLP (gated: three
    ``d_model × d_mlp`` matrices)."""
    cfg = model.cfg
    n_kv = cfg.n_key_value_heads or cfg.n_heads
    attn = cfg.d_model * cfg.d_head * (2 * cfg.n_heads + 2 * n_kv)
    mlp = 0 if cfg.attn_only else (3 if cfg.gated_mlp else 2) * cfg.d_model * cfg.d_mlp
    return 2.0 * (attn + mlp)


def _keys_seen(model, layer: int, q: int) -> int:
    """Keys a query at position ``q`` attends to in block ``layer`` (causal, local windows)."""
    cfg = model.cfg
    attn = model.blocks[layer].attn
    if getattr(attn, "attn_type", "global") == "local" and cfg.window_size is not None:
        return min(q + 1, int(cfg.window_size))
    return q + 1


def kv_flops(model) -> float:
    """FLOPs of the key and value projections of one position in one block."""
    cfg = model.cfg
    return 2.0 * 2 * cfg.d_model * cfg.d_head * (cfg.n_key_value_heads or cfg.n_heads)


def patch_flops(
    model,
    seq_len: int,
    n_prompts: int,
    patches: Sequence[tuple[int, int]],
    *,
    only_last: bool = True,
    attention: bool = True,
    readout: bool = True,
) -> float:
    """FLOPs of the KV-reuse schedule for ``patches`` (``(layer, start)`` each, run on
    ``n_prompts`` prompts): blocks ``layer..n_layers-1`` at positions ``start..T-1`` (projections
    and MLP per position, ``4 · n_heads · d_head`` per key a query sees, causal and windowed), where
    with ``only_last`` the last block computes only keys and values of positions ``< T-1`` and the
    full block at ``T-1``; plus the final norm and two-logit readout. This is the least work that
    gives the patched logits: every position ≥ start of every block ≥ layer can change, and only the
    last position is read. ``attention=False`` / ``readout=False`` leave out the attention over keys
    / the readout (the projections and MLP alone)."""
    cfg = model.cfg
    T = seq_len
    per_pos, kv = token_layer_flops(model), kv_flops(model)
    per_key = 4.0 * cfg.n_heads * cfg.d_head if attention else 0.0
    total = 0.0
    for L, s in patches:
        work = 0.0
        for layer in range(L, cfg.n_layers):
            if layer == cfg.n_layers - 1 and only_last:
                work += (T - 1 - s) * kv + per_pos + _keys_seen(model, layer, T - 1) * per_key
            else:
                keys = sum(_keys_seen(model, layer, q) for q in range(s, T))
                work += (T - s) * per_pos + keys * per_key
        total += n_prompts * (work + (2 * 2 * cfg.d_model if readout else 0.0))
    return total


def full_forward_flops(model, seq_len: int, *, unembed_positions: int) -> float:
    """FLOPs of one full forward pass over ``seq_len`` positions (causal attention), with the
    unembedding of ``unembed_positions`` positions (TransformerLens' patching unembeds every one)."""
    cfg = model.cfg
    per_pos, per_key = token_layer_flops(model), 4.0 * cfg.n_heads * cfg.d_head
    work = 0.0
    for layer in range(cfg.n_layers):
        work += seq_len * per_pos + sum(_keys_seen(model, layer, q) for q in range(seq_len)) * per_key
    return work + unembed_positions * 2.0 * cfg.d_model * cfg.d_vocab


__all__ = [
    "CorruptedRun",
    "JoinPatch",
    "SweepPlan",
    "full_forward_flops",
    "kv_flops",
    "kv_reuse_blocker",
    "kv_reuse_patch_lds",
    "patch_flops",
    "record_corrupted",
    "sweep_plan",
    "token_layer_flops",
]
