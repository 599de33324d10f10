"""Path patching (Wang et al. 2022, "Interpretability in the wild"; Goldowsky-Dill et al. 2023,
"Localizing model behavior with path patching"), batched.

The effect of sender s on the metric *only along its direct path* into a set of receivers R:

1. run clean and corrupted, caching activations;
2. on the corrupted input, patch s's output to its clean value and freeze every other component
   (each head's ``hook_z``, each MLP's output) at its corrupted value; record the inputs of the
   receivers: a head's query/key/value (``hook_q``/``hook_k``/``hook_v``), an MLP's pre-activations
   (``hook_pre``, and ``hook_pre_linear`` for gated MLPs), or the final residual (the logits);
3. run the corrupted input again with only those receiver inputs patched in (everything downstream
   recomputes), and take the normalised metric (clean = 1, corrupted = 0).

How it is batched and exact. With every other component frozen, the residual in step 2 is the
corrupted residual plus the sender's change, ``h'_L = h^corr_L + Δ_s`` at every layer after the
sender (``Δ_s`` = clean − corrupted output of s: ``attn_out`` of s's layer with only s's ``z``
clean, recomputed by running that one block, so post-norms are honoured; the MLP or embedding
output difference otherwise). So step 2 is one *block* forward per receiver layer, from
``h^corr_L + Δ_s`` (for an MLP receiver, ``resid_mid`` is held at ``h^corr_mid + Δ_s``: the
layer's own attention stays frozen), and step 3 starts at the first receiver layer from the cached
corrupted residual (TransformerLens' ``start_at_layer``). Each batch row is one (sender, prompt)
pair, as in ``workbench.patching.activation_patch``. The brute-force two-pass version (every head
frozen with hooks over full forward passes) is in the tests, and agrees to float precision.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..edits import EditContext
from ..patching.activation import restart_blocker
from ..patching.metric import LogitDiffMetric
from ..readout import resid_to_logits
from ..registry import HookRegistry
from ..validation import check_bool, check_int
from .checks import check_tokens, recorded
from .nodes import Receiver, Sender, all_heads, reaches

SenderLike = Union[Sender, str, tuple]
ReceiverLike = Union[Receiver, str]


class SetHeads:
    """Edit on a per-head activation ``[rows, pos, head, d_head]``: heads where ``heads[r]`` is
    True take ``values``; the others keep the run's values."""

    def __init__(self, values: Tensor, heads: Tensor) -> None:
        self.values, self.heads = values, heads  # [rows, pos, H, dh], bool [rows, H]

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        if self.values.shape != acts.shape:
            raise ValueError(f"SetHeads: values {tuple(self.values.shape)} vs activations {tuple(acts.shape)}")
        return torch.where(self.heads[:, None, :, None].to(acts.device), self.values.to(acts.dtype), acts)


class SetAll:
    """Edit: replace the activation by per-row values of the same shape."""

    def __init__(self, values: Tensor) -> None:
        self.values = values

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        if self.values.shape != acts.shape:
            raise ValueError(f"SetAll: values {tuple(self.values.shape)} vs activations {tuple(acts.shape)}")
        return self.values.to(acts.dtype).clone()


class AddRows:
    """Edit: ``acts + delta`` with a per-row ``delta`` of the same shape."""

    def __init__(self, delta: Tensor) -> None:
        self.delta = delta

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        return acts + self.delta.to(acts.dtype)


def check_senders(model, senders) -> list[Sender]:
    if senders is None:
        return all_heads(model)
    if isinstance(senders, (str, Sender)) or not isinstance(senders, Sequence):
        raise TypeError(f"senders must be a list (e.g. ['L9H6', 'MLP3', (4, 2)]), got {senders!r}")
    if len(senders) == 0:
        raise ValueError("senders is empty; pass None for every head")
    out = [Sender.parse(s, model) for s in senders]
    if len(set(out)) != len(out):
        raise ValueError(f"senders repeat {sorted({s.label for s in out if out.count(s) > 1})}")
    return out


def check_receivers(model, receivers) -> list[Receiver]:
    if isinstance(receivers, (str, Receiver)):
        receivers = [receivers]
    if not isinstance(receivers, Sequence) or len(receivers) == 0:
        raise ValueError(f"receivers must be a non-empty list (e.g. ['logits'] or ['L9H6.q']), got {receivers!r}")
    out = [Receiver.parse(r, model) for r in receivers]
    if len(set(out)) != len(out):
        raise ValueError(f"receivers repeat {sorted({r.label for r in out if out.count(r) > 1})}")
    if any(r.kind == "mlp" for r in out) and getattr(model.cfg, "num_experts", None):
        raise ValueError(f"MLP receivers need a dense MLP; this model has num_experts={model.cfg.num_experts}")
    return out


def check_pair(model, clean, corrupted, metric) -> tuple[Tensor, Tensor]:
    clean, corrupted = check_tokens(model, clean, "clean"), check_tokens(model, corrupted, "corrupted")
    if clean.shape != corrupted.shape:
        raise ValueError(
            f"clean and corrupted tokens must have equal shapes, got {tuple(clean.shape)} and {tuple(corrupted.shape)}"
        )
    if not isinstance(metric, LogitDiffMetric):
        raise TypeError(f"metric must be a LogitDiffMetric (see workbench.patching.make_metric), got {metric!r:.60}")
    if metric.correct.shape[0] != clean.shape[0]:
        raise ValueError(f"the metric is for {metric.correct.shape[0]} prompts, the tokens have {clean.shape[0]}")
    blocker = restart_blocker(model)
    if blocker is not None:
        raise ValueError(f"path patching restarts the forward at a layer, which is not exact here: {blocker}")
    return clean, corrupted


def _mlp_sites(model, L: int) -> list[str]:
    """The MLP pre-activation hooks that determine its output from its input."""
    sites = [f"mlp.pre.{L}"]
    if model.cfg.gated_mlp and not model.cfg.is_layer_norm_activation():
        sites.append(f"mlp.pre_linear.{L}")
    return sites


def _record(model, tokens: Tensor, sites: set[str]) -> dict[str, Tensor]:
    reg = HookRegistry(model)
    for s in sorted(sites):
        reg.probe(s, s)
    with torch.no_grad():
        reg.run(tokens, need_logits=False)
    return {s: recorded(reg, s) for s in sites}


def _run_blocks(model, reg: HookRegistry, resid: Tensor, start: int, stop: int) -> Tensor:
    with torch.no_grad(), reg:
        return model(resid.to(model.cfg.device), start_at_layer=start, stop_at_layer=stop)


@dataclass(frozen=True)
class _Caches:
    clean: dict[str, Tensor]
    corr: dict[str, Tensor]


def _caches(model, clean: Tensor, corrupted: Tensor, senders: list[Sender], receivers: list[Receiver]) -> _Caches:
    n_layers = model.cfg.n_layers
    c_sites, x_sites = {"resid_pre.0"}, {f"resid_pre.{L}" for L in range(n_layers)}
    x_sites.add(f"resid_post.{n_layers - 1}")
    for s in senders:
        if s.kind == "head":
            c_sites.add(f"attn.z.{s.layer}")
            x_sites.add(f"attn_out.{s.layer}")
        elif s.kind == "mlp":
            c_sites.add(f"mlp_out.{s.layer}")
            x_sites.add(f"mlp_out.{s.layer}")
    if not model.cfg.parallel_attn_mlp:
        x_sites |= {f"resid_mid.{r.layer}" for r in receivers if r.kind == "mlp"}
    return _Caches(_record(model, clean, c_sites), _record(model, corrupted, x_sites))


def _sender_delta(model, caches: _Caches, group: tuple, senders: list[Sender], prompt_of: Tensor) -> Tensor:
    """``Δ_s`` per row ``[rows, pos, d_model]``: clean minus corrupted output of each row's sender,
    with every other component at its corrupted value."""
    kind, L = group
    if kind == "embed":
        return caches.clean["resid_pre.0"][prompt_of] - caches.corr["resid_pre.0"][prompt_of]
    if kind == "mlp":
        return caches.clean[f"mlp_out.{L}"][prompt_of] - caches.corr[f"mlp_out.{L}"][prompt_of]
    heads = torch.zeros(len(prompt_of), model.cfg.n_heads, dtype=torch.bool)
    heads[torch.arange(len(prompt_of)), torch.tensor([s.head for s in senders])] = True
    reg = HookRegistry(model)
    reg.steer("sender", f"attn.z.{L}", SetHeads(caches.clean[f"attn.z.{L}"][prompt_of], heads))
    reg.probe("out", f"attn_out.{L}", when="after")
    _run_blocks(model, reg, caches.corr[f"resid_pre.{L}"][prompt_of], L, L + 1)
    return recorded(reg, "out") - caches.corr[f"attn_out.{L}"][prompt_of]


def _receiver_values(
    model, caches: _Caches, sender_order: float, receivers: list[Receiver], delta: Tensor, prompt_of: Tensor
) -> dict[int, dict[str, Tensor]]:
    """Step 2: for each receiver layer, the receivers' inputs with the sender's change along the
    direct path only: ``{layer: {site: values}}``."""
    out: dict[int, dict[str, Tensor]] = {}
    for L in sorted({r.layer for r in receivers if r.layer is not None}):
        here = [r for r in receivers if r.layer == L]
        reg = HookRegistry(model)
        sites = []
        for kind in ("q", "k", "v"):
            if any(r.kind == kind for r in here):
                sites.append(f"attn.{kind}.{L}")
        if any(r.kind == "mlp" for r in here):
            sites += _mlp_sites(model, L)
            if not model.cfg.parallel_attn_mlp:
                reg.steer("mid", f"resid_mid.{L}", SetAll(caches.corr[f"resid_mid.{L}"][prompt_of] + delta))
        for s in sites:
            reg.probe(s, s, when="after")
        x = caches.corr[f"resid_pre.{L}"][prompt_of]
        if sender_order < L:  # the sender writes before this layer's attention reads
            x = x + delta
        _run_blocks(model, reg, x, L, L + 1)
        out[L] = {s: recorded(reg, s) for s in sites}
    return out


def _final_ld(
    model, caches: _Caches, metric, receivers: list[Receiver], values, delta: Tensor, prompt_of: Tensor
) -> Tensor:
    """Step 3: the corrupted run with only the receivers' inputs patched; LD per row."""
    n_layers = model.cfg.n_layers
    final = f"resid_post.{n_layers - 1}"
    has_logits = any(r.kind == "logits" for r in receivers)
    layers = [r.layer for r in receivers if r.layer is not None]
    if not layers:
        resid_last = caches.corr[final][prompt_of][:, -1] + (delta[:, -1] if has_logits else 0.0)
    else:
        reg = HookRegistry(model)
        for L, sites in values.items():
            for s, v in sites.items():
                kind = s.split(".")[1]
                if kind in ("q", "k", "v"):
                    mask = torch.zeros(v.shape[0], v.shape[2], dtype=torch.bool)
                    for r in receivers:
                        if r.layer == L and r.kind == kind:
                            mask[:, r.head] = True
                    reg.steer(f"patch {s}", s, SetHeads(v, mask))
                else:
                    reg.steer(f"patch {s}", s, SetAll(v))
        if has_logits:
            reg.steer("logits path", final, AddRows(delta))
        start = min(layers)
        resid_last = _run_blocks(model, reg, caches.corr[f"resid_pre.{start}"][prompt_of], start, n_layers)[:, -1]
    logits = resid_to_logits(model, resid_last)
    return metric.per_row(logits, prompt_of.to(logits.device)).cpu()


@dataclass(frozen=True)
class PathPatching:
    """Normalised metric per sender (clean = 1, corrupted = 0) with the sender's effect reaching
    only ``receivers`` (jointly). A sender with no direct path to any receiver scores the
    corrupted run's value (0)."""

    senders: tuple[Sender, ...]
    receivers: tuple[Receiver, ...]
    values: Float[Tensor, " sender"]
    n_layers: int
    n_heads: int

    def grid(self) -> Float[Tensor, "layer head"]:
        """Head senders as a ``[n_layers, n_heads]`` grid (NaN where a head was not a sender)."""
        g = torch.full((self.n_layers, self.n_heads), float("nan"))
        for s, v in zip(self.senders, self.values):
            if s.kind == "head":
                g[s.layer, s.head] = v
        return g

    def top(self, k: int = 10, *, order: str = "abs") -> list[tuple[str, float]]:
        """The ``k`` senders with the largest effect ("abs", "positive" or "negative")."""
        check_int("k", k, min=1)
        rows = [(s.label, float(v)) for s, v in zip(self.senders, self.values)]
        key = {"abs": lambda r: -abs(r[1]), "positive": lambda r: -r[1], "negative": lambda r: r[1]}
        if order not in key:
            raise ValueError(f"order must be 'abs', 'positive' or 'negative', got {order!r}")
        return sorted(rows, key=key[order])[:k]


def path_patch(
    model,
    clean: Int[Tensor, "n pos"],
    corrupted: Int[Tensor, "n pos"],
    metric: LogitDiffMetric,
    senders: Optional[Sequence[SenderLike]] = None,
    receivers: Union[ReceiverLike, Sequence[ReceiverLike]] = ("logits",),
    *,
    tokens_per_pass: int = 2048,
    progress: bool = False,
) -> PathPatching:
    """Path patching of each sender (default: every head) into ``receivers`` (patched jointly;
    default: the logits, i.e. the sender's direct effect). ``tokens_per_pass`` bounds rows × positions
    per forward pass."""
    clean, corrupted = check_pair(model, clean, corrupted, metric)
    senders = check_senders(model, senders)
    receivers = check_receivers(model, receivers)
    check_int("tokens_per_pass", tokens_per_pass, min=1)
    check_bool("progress", progress)
    n, T = clean.shape
    caches = _caches(model, clean, corrupted, senders, receivers)
    corr_logits = resid_to_logits(model, caches.corr[f"resid_post.{model.cfg.n_layers - 1}"][:, -1])
    corr_ld = metric.normalise(metric.per_row(corr_logits, torch.arange(n)).mean().item())
    values = torch.full((len(senders),), float("nan"))
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(senders):
        groups.setdefault((s.kind, s.layer), []).append(i)
    per_pass = max(1, tokens_per_pass // T // n)  # senders per pass (each takes n rows)
    from tqdm.auto import tqdm

    for group, idx in tqdm(list(groups.items()), desc="path patching", disable=not progress):
        sender0 = senders[idx[0]]
        reached = [r for r in receivers if reaches(sender0, r, model)]
        if not reached:
            values[idx] = corr_ld
            continue
        for start in range(0, len(idx), per_pass):
            chunk = idx[start : start + per_pass]
            chunk_senders = [senders[i] for i in chunk]
            prompt_of = torch.arange(n).repeat(len(chunk))
            row_senders = [s for s in chunk_senders for _ in range(n)]
            delta = _sender_delta(model, caches, group, row_senders, prompt_of)
            vals = _receiver_values(model, caches, sender0.order, reached, delta, prompt_of)
            lds = _final_ld(model, caches, metric, reached, vals, delta, prompt_of)
            values[chunk] = metric.normalise(lds.view(len(chunk), n).mean(1))
    return PathPatching(tuple(senders), tuple(receivers), values, model.cfg.n_layers, model.cfg.n_heads)


@dataclass(frozen=True)
class PathPatchingMatrix:
    """``values[i, j]``: path patching of sender i into receiver j alone (NaN where no direct path)."""

    senders: tuple[Sender, ...]
    receivers: tuple[Receiver, ...]
    values: Float[Tensor, "sender receiver"]


def path_patch_matrix(
    model,
    clean: Int[Tensor, "n pos"],
    corrupted: Int[Tensor, "n pos"],
    metric: LogitDiffMetric,
    senders: Optional[Sequence[SenderLike]],
    receivers: Sequence[ReceiverLike],
    **kw,
) -> PathPatchingMatrix:
    """Sender × receiver path patching, each receiver on its own."""
    senders = check_senders(model, senders)
    receivers = check_receivers(model, receivers)
    cols = []
    for r in receivers:
        res = path_patch(model, clean, corrupted, metric, senders, [r], **kw)
        col = res.values.clone()
        col[torch.tensor([not reaches(s, r, model) for s in senders])] = float("nan")
        cols.append(col)
    return PathPatchingMatrix(tuple(senders), tuple(receivers), torch.stack(cols, 1))


def path_patch_task(model, task, metric: LogitDiffMetric, senders=None, receivers=("logits",), **kw) -> PathPatching:
    """``path_patch`` on a ``workbench.patching.Task``."""
    return path_patch(model, task.clean, task.corrupted, metric, senders, receivers, **kw)


__all__ = [
    "PathPatching",
    "PathPatchingMatrix",
    "check_receivers",
    "check_senders",
    "path_patch",
    "path_patch_matrix",
    "path_patch_task",
]
