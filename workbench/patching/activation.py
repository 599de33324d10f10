"""Activation patching, batched: many patches per forward pass, each computing only what it can change.

Activation patching (Meng et al. 2022; Wang et al. 2022; Heimersheim & Nanda 2024): run the
corrupted input, replace one component's activation with its value on the clean input, and measure
the metric. The grids here match TransformerLens' ``transformer_lens.patching`` functions
(``get_act_patch_resid_pre``, ``..._attn_out``, ``..._mlp_out``, ``..._attn_head_out_all_pos``,
``..._attn_head_out_by_pos``): for each index the *same* position/head is patched in every prompt
of the batch and the metric is taken over the batch.

Three schedules compute the same grid (``schedule=``; ``patch_schedule`` says which one runs):

* ``"kv_reuse"`` (``workbench.patching.reuse``): a patch at (layer L, position p) recomputes only
  positions ≥ p of blocks L.., attending to the corrupted run's cached keys and values of the
  earlier positions; patches that start at the same position share one sweep over the blocks.
* ``"restart"``: every patch runs blocks L.. on all positions from the cached corrupted
  ``resid_pre.L`` (TransformerLens' ``start_at_layer``); a registry steer with a per-row
  ``[batch, pos]`` mask writes the clean values (heads: one head per row).
* ``"full"``: every patch runs the whole model (as TransformerLens does), batched.

``"auto"`` takes the first that is exact for the config: ``kv_reuse_blocker`` names the field that
rules out KV reuse (bidirectional attention, relative positional bias, non-standard blocks) and
``restart_blocker`` the one that rules out restarts (``positional_embedding_type='shortformer'``
feeds the positional embedding to every block); a schedule is never run where it would compute
something else — asking for it explicitly raises, naming the field. Only the last position is read
out, through ``workbench.readout`` (final norm, unembedding, output soft-cap: what the forward pass
returns; KV reuse reads just the metric's two logits with ``token_logits``).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch
from jaxtyping import Int
from torch import Tensor

from ..backends import as_backend
from ..edits import EditContext
from ..readout import resid_to_logits
from ..registry import HookRegistry
from ..validation import check_choice, check_int
from .metric import LogitDiffMetric
from .reuse import kv_reuse_blocker, kv_reuse_patch_lds, record_corrupted
from .rules import recorded
from .tasks import Task

SCHEDULES = ("auto", "kv_reuse", "restart", "full")

STREAMS = ("resid_pre", "attn_out", "mlp_out", "heads_all_pos", "heads_by_pos")
LAYER_POS_STREAMS = ("resid_pre", "attn_out", "mlp_out")

# The registry site each grid patches.
SITE_STREAM = {
    "resid_pre": "resid_pre",
    "attn_out": "attn_out",
    "mlp_out": "mlp_out",
    "heads_all_pos": "attn.z",
    "heads_by_pos": "attn.z",
}


def check_stream(stream: str) -> str:
    if not isinstance(stream, str) or stream not in STREAMS:
        raise ValueError(f"unknown patching stream {stream!r}; use one of {', '.join(STREAMS)}")
    return stream


def check_token_pair(model, clean: Tensor, corrupted: Tensor) -> None:
    """Clean and corrupted token ids: integer ``[n, pos]`` tensors of equal shape, inside the vocabulary."""
    for what, t in (("clean", clean), ("corrupted", corrupted)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{what} tokens must be a torch.Tensor of ids, got {type(t).__name__}")
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{what} tokens must be integer ids, got dtype {t.dtype}")
    if clean.shape != corrupted.shape or clean.ndim != 2 or clean.numel() == 0:
        raise ValueError(
            f"clean and corrupted tokens must be non-empty [n, pos] of equal shape, got {tuple(clean.shape)} and "
            f"{tuple(corrupted.shape)}"
        )
    V = model.cfg.d_vocab
    for what, t in (("clean", clean), ("corrupted", corrupted)):
        if int(t.min()) < 0 or int(t.max()) >= V:
            raise ValueError(f"{what} tokens hold ids {int(t.min())}..{int(t.max())}, outside 0..{V - 1}")


def check_patch_layers(model, layers: Optional[Sequence[int]]) -> list[int]:
    """Distinct layers ``0..n_layers-1`` (None = all); an empty request raises."""
    n_layers = model.cfg.n_layers
    if layers is None:
        return list(range(n_layers))
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise TypeError(f"layers must be a list of ints, got {type(layers).__name__}")
    if len(layers) == 0:
        raise ValueError("layers is empty: there is nothing to patch (pass None for every layer)")
    out = []
    for L in layers:
        check_int("layer", L)
        if not 0 <= L < n_layers:
            raise ValueError(f"layer {L} is not a layer of this model (0..{n_layers - 1})")
        out.append(int(L))
    return sorted(set(out))


def restart_blocker(model) -> Optional[str]:
    """The config field that makes a ``start_at_layer`` restart differ from the full forward pass,
    or None when restarting is exact for this model."""
    backend = as_backend(model)
    if backend.restart_blocker is not None:  # a TransformerBridge: no start_at_layer at all
        return backend.restart_blocker
    if model.cfg.positional_embedding_type == "shortformer":
        return "positional_embedding_type='shortformer' (every block needs the positional embedding)"
    return None


def patch_schedule(model, schedule: str = "auto") -> tuple[str, Optional[str]]:
    """The schedule ``activation_patch`` runs for ``schedule`` on this model, and why a faster one
    is not used (None when nothing was ruled out). An explicit schedule the config rules out raises
    ``ValueError`` naming the config field."""
    check_choice("schedule", schedule, SCHEDULES)
    kv, restart = kv_reuse_blocker(model), restart_blocker(model)
    if schedule == "kv_reuse" and kv is not None:
        raise ValueError(f"schedule='kv_reuse' is not exact for this model: {kv}; use 'auto'")
    if schedule == "restart" and restart is not None:
        raise ValueError(f"schedule='restart' is not exact for this model: {restart}; use 'auto'")
    if schedule != "auto":
        return schedule, None
    if kv is None:
        return "kv_reuse", None
    if restart is None:
        return "restart", f"no KV reuse: {kv}"
    return "full", f"no KV reuse: {kv}; no restart: {restart}"


@dataclass(frozen=True)
class PatchRows:
    """An edit that gives each batch row the clean activation of its own prompt, optionally only
    for one head per row (``heads[r]``; for ``attn.z``, whose activations are ``[batch, pos, head,
    d_head]``). The registry applies it only at the row's masked positions."""

    clean: Tensor  # [rows, pos, ...] clean values per row
    heads: Optional[Tensor] = None  # [rows] head index per row

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        if self.clean.shape != acts.shape:
            raise ValueError(
                f"PatchRows: clean values have shape {tuple(self.clean.shape)}, activations {tuple(acts.shape)}"
            )
        if self.heads is None:
            return self.clean.to(acts.dtype)
        onehot = torch.nn.functional.one_hot(self.heads, acts.shape[2]).bool().to(acts.device)
        return torch.where(onehot[:, None, :, None], self.clean.to(acts.dtype), acts)


def _record_all(model, tokens: Tensor, sites: dict[str, str]) -> dict[str, Tensor]:
    """One forward with probes at ``sites`` ({name: site}); returns the recorded activations."""
    reg = HookRegistry(model)
    for name, site in sites.items():
        reg.probe(name, site)
    with torch.no_grad():
        reg.run(tokens, need_logits=False)
    return {name: recorded(reg, name) for name in sites}


def patch_index(model, stream: str, seq_len: int) -> list[tuple]:
    """The patches of one layer of a grid, as (position or None, head or None)."""
    H = model.cfg.n_heads
    if stream in LAYER_POS_STREAMS:
        return [(p, None) for p in range(seq_len)]
    if stream == "heads_all_pos":
        return [(None, h) for h in range(H)]
    return [(p, h) for p in range(seq_len) for h in range(H)]


def _grid_shape(model, stream: str, n_layers: int, seq_len: int) -> tuple:
    H = model.cfg.n_heads
    return {
        "resid_pre": (n_layers, seq_len),
        "attn_out": (n_layers, seq_len),
        "mlp_out": (n_layers, seq_len),
        "heads_all_pos": (n_layers, H),
        "heads_by_pos": (n_layers, seq_len, H),
    }[stream]


def activation_patch(
    model,
    clean: Int[Tensor, "n pos"],
    corrupted: Int[Tensor, "n pos"],
    metric: LogitDiffMetric,
    stream: str,
    *,
    layers: Optional[Sequence[int]] = None,
    tokens_per_pass: int = 2048,
    schedule: str = "auto",
    progress: bool = False,
) -> Tensor:
    """Patching grid for ``stream``: ``[layer, pos]`` for resid_pre/attn_out/mlp_out,
    ``[layer, head]`` for heads_all_pos, ``[layer, pos, head]`` for heads_by_pos (heads = the
    per-head attention output ``attn.z``). Entry = normalised metric of the corrupted run with that
    one component restored from the clean run in every prompt (clean = 1, corrupted = 0).

    ``tokens_per_pass`` bounds rows × positions per block call; ``layers`` restricts the grid (other
    rows are NaN; an empty list raises). ``schedule``: ``"auto"`` (the fastest exact one, see
    ``patch_schedule``), ``"kv_reuse"``, ``"restart"`` or ``"full"`` — all give the same grid."""
    check_stream(stream)
    check_token_pair(model, clean, corrupted)
    if not isinstance(metric, LogitDiffMetric):
        raise TypeError(f"metric must be a LogitDiffMetric (see make_metric), got {type(metric).__name__}")
    if metric.correct.shape[0] != clean.shape[0]:
        raise ValueError(f"the metric is for {metric.correct.shape[0]} prompts, the tokens have {clean.shape[0]}")
    check_int("tokens_per_pass", tokens_per_pass, min=1)
    layers = check_patch_layers(model, layers)
    used, _ = patch_schedule(model, schedule)
    T = clean.shape[1]
    site_stream = SITE_STREAM[stream]
    clean_acts = _record_all(model, clean, {f"c{L}": f"{site_stream}.{L}" for L in layers})
    grid = torch.full(_grid_shape(model, stream, model.cfg.n_layers, T), float("nan"))
    patches = patch_index(model, stream, T)
    if used == "kv_reuse":
        run = record_corrupted(model, corrupted, layers)
        lds = kv_reuse_patch_lds(
            model,
            {L: clean_acts[f"c{L}"] for L in layers},
            run,
            metric,
            None if stream == "resid_pre" else site_stream,
            {L: patches for L in layers},
            tokens_per_pass=tokens_per_pass,
            progress=progress,
        )
    else:
        lds = _restart_lds(
            model, clean_acts, corrupted, metric, site_stream, layers, patches, tokens_per_pass, used, progress
        )
    for L in layers:
        values = metric.normalise(lds[L])
        grid[L] = values.view(T, -1) if stream == "heads_by_pos" else values
    return grid


def _restart_lds(
    model, clean_acts, corrupted, metric, site_stream, layers, patches, tokens_per_pass, used, progress
) -> dict[int, Tensor]:
    """Mean LD per patch with every patch run on all positions, from ``resid_pre.L`` (``restart``)
    or from the embedding (``full``); a registry steer with a per-row mask writes the clean values."""
    n, T = corrupted.shape
    n_layers = model.cfg.n_layers
    start_at_layer = used == "restart"
    corr_resid = (
        _record_all(model, corrupted, {f"x{L}": f"resid_pre.{L}" for L in layers if L > 0}) if start_at_layer else {}
    )
    rows_per_pass = max(1, tokens_per_pass // T)
    n_rows = len(patches) * n
    from tqdm.auto import tqdm

    dev = model.cfg.device
    out = {}
    for L in tqdm(layers, desc=f"patching ({used})", disable=not progress):
        lds = torch.empty(n_rows)
        for start in range(0, n_rows, rows_per_pass):
            rows = torch.arange(start, min(start + rows_per_pass, n_rows))
            patch_of, prompt_of = rows // n, rows % n
            mask = torch.zeros(len(rows), T, dtype=torch.bool)
            heads = None
            pos = [patches[j][0] for j in patch_of.tolist()]
            for r, p in enumerate(pos):
                if p is None:
                    mask[r] = True
                else:
                    mask[r, p] = True
            if patches[0][1] is not None:
                heads = torch.tensor([patches[j][1] for j in patch_of.tolist()])
            reg = HookRegistry(model)
            reg.steer("patch", f"{site_stream}.{L}", PatchRows(clean_acts[f"c{L}"][prompt_of], heads), positions=mask)
            with torch.no_grad(), reg:
                if start_at_layer and L > 0:
                    resid = model(corr_resid[f"x{L}"][prompt_of].to(dev), start_at_layer=L, stop_at_layer=n_layers)
                else:
                    resid = as_backend(model).forward(corrupted[prompt_of].to(dev), stop_at_layer=n_layers)
            last = resid_to_logits(model, resid[:, -1])
            lds[rows] = metric.per_row(last, prompt_of.to(last.device)).cpu()
        out[L] = lds.view(len(patches), n).mean(1)
    return out


def patch_task(model, task: Task, metric: LogitDiffMetric, stream: str, **kw) -> Tensor:
    """``activation_patch`` on a ``Task``."""
    return activation_patch(model, task.clean, task.corrupted, metric, stream, **kw)


__all__ = [
    "LAYER_POS_STREAMS",
    "SCHEDULES",
    "STREAMS",
    "PatchRows",
    "activation_patch",
    "check_patch_layers",
    "check_stream",
    "check_token_pair",
    "patch_index",
    "patch_schedule",
    "patch_task",
    "restart_blocker",
]
