"""Circuits as sets of edges, and how faithful they are.

A circuit ``C`` is a set of edges of ``workbench.circuits.graph.Graph``. Its metric is the normalised
metric of the clean run in which every edge *outside* C is patched to its corrupted value: each
receiver's input becomes

    x_v = Σ_{u → v ∈ C} a_u + Σ_{u → v ∉ C} a_u^corr  (+ biases)

with ``a_u`` the sender's output *in this run* (it changes as its own inputs lose edges) and
``a_u^corr`` its output in the corrupted run (Hanna et al. 2024; Conmy et al. 2023). The empty
circuit is the corrupted run (0), the full graph the clean run (1). One forward pass evaluates many
circuits: each batch row is one (circuit, prompt) pair, and a receiver-input steer subtracts
``Σ_{u→v ∉ C} (a_u − a_u^corr)`` using the senders' outputs probed earlier in the same pass.

``faithfulness_curve`` keeps the top-k edges of each score (and of random scores) for a range of k.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..edits import EditContext
from ..patching.metric import LogitDiffMetric
from ..readout import resid_to_logits
from ..registry import HookRegistry
from ..validation import check_bool, check_int
from .checks import recorded
from .edges import EdgeScores
from .graph import Graph, group_outputs, group_site, split_inputs
from .path_patching import check_pair


class _PassState:
    """What the receiver steers of one forward pass share: the registry (for the senders' current
    outputs), the senders' corrupted outputs and the receivers' corrupted inputs per row, and which
    edges each row keeps."""

    def __init__(
        self, model, reg: HookRegistry, graph: Graph, corr: dict[str, Tensor], keep: Tensor, drop: Tensor
    ) -> None:
        self.model, self.reg, self.graph, self.corr = model, reg, graph, corr
        self.keep, self.drop = keep, drop  # [rows, sender, receiver]
        self.delta: dict[int, Tensor] = {}  # group index -> [rows, pos, k, d_model], current − corrupted

    def group_delta(self, gi: int) -> Tensor:
        if gi not in self.delta:
            group = self.graph.groups[gi]
            site = group_site(group)
            cur = group_outputs(self.model, group, recorded(self.reg, f"s:{site}"))
            self.delta[gi] = cur - group_outputs(self.model, group, self.corr[site]).to(cur.dtype)
        return self.delta[gi]

    def summed(self, which: Tensor, cols: list[int], dtype) -> Optional[Tensor]:
        """``Σ_u which[b, u, v] (a_u − a_u^corr)`` for the receivers ``cols``: ``[rows, pos, r, d]``."""
        total = None
        for gi, rows in enumerate(self.graph.group_rows):
            w = which[:, list(rows)][:, :, cols]  # [batch, k, r]
            if not bool(w.any()):
                continue
            term = torch.einsum("bpkd,bkr->bprd", self.group_delta(gi), w.to(dtype))
            total = term if total is None else total + term
        return total


class _DropEdges:
    """Edit at a receiver site: the input with every dropped edge's sender at its corrupted output.
    Either ``x − Σ_{dropped}(a_u − a_u^corr)`` or, when the circuit keeps fewer edges into these
    receivers than it drops, the equal ``x^corr + Σ_{kept}(a_u − a_u^corr)`` (less work)."""

    def __init__(self, state: _PassState, site_index: int) -> None:
        self.state, self.si = state, site_index

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        st = self.state
        cols = list(st.graph.site_cols[self.si])
        site = st.graph.sites[self.si]
        n_keep = int(st.keep[:, :, cols].sum())
        n_drop = int(st.drop[:, :, cols].sum())
        if n_drop == 0:
            return acts.clone()
        if n_keep < n_drop:
            base, sign, total = st.corr[site].to(acts.dtype), 1.0, st.summed(st.keep, cols, acts.dtype)
        else:
            base, sign, total = acts, -1.0, st.summed(st.drop, cols, acts.dtype)
        if total is None:
            return base.clone()
        return base + sign * (total if acts.ndim == 4 else total[:, :, 0])


def _check_keep(graph: Graph, keep: Tensor) -> Tensor:
    keep = graph.check_mask(keep, "keep")
    return keep[None] if keep.ndim == 2 else keep


def circuit_metric(
    model,
    clean: Int[Tensor, "n pos"],
    corrupted: Int[Tensor, "n pos"],
    metric: LogitDiffMetric,
    keep: Bool[Tensor, "... sender receiver"],
    *,
    graph: Optional[Graph] = None,
    tokens_per_pass: int = 2048,
    progress: bool = False,
) -> Float[Tensor, " circuit"]:
    """Normalised metric of each circuit ``keep[c]`` (a bool mask of kept edges; one mask or a
    stack), every other edge patched to its corrupted value."""
    clean, corrupted = check_pair(model, clean, corrupted, metric)
    graph = Graph.of(model) if graph is None else graph.check_model(model)
    keep = _check_keep(graph, keep)
    check_int("tokens_per_pass", tokens_per_pass, min=1)
    check_bool("progress", progress)
    n, T = clean.shape
    group_sites = [group_site(g) for g in graph.groups]
    with split_inputs(model):  # senders' outputs and receivers' inputs of the corrupted run
        reg = HookRegistry(model)
        for s in [*group_sites, *graph.sites]:
            reg.probe(s, s, when="before")
        with torch.no_grad():
            reg.run(corrupted, need_logits=False)
        corr = {s: recorded(reg, s) for s in [*group_sites, *graph.sites]}
    C = keep.shape[0]
    rows_total = C * n
    per_pass = max(1, tokens_per_pass // T)
    lds = torch.empty(rows_total)
    keep = keep & graph.edges[None]
    drops_all = graph.edges[None] & ~keep  # [C, U, V]
    from tqdm.auto import tqdm

    for start in tqdm(range(0, rows_total, per_pass), desc="circuits", disable=not progress):
        rows = torch.arange(start, min(start + per_pass, rows_total))
        circ_of, prompt_of = rows // n, rows % n
        with split_inputs(model):
            reg = HookRegistry(model)
            rows_corr = {s: v[prompt_of] for s, v in corr.items()}
            state = _PassState(model, reg, graph, rows_corr, keep[circ_of], drops_all[circ_of])
            for s in group_sites:
                reg.probe(f"s:{s}", s)
            for si, site in enumerate(graph.sites):
                reg.steer(f"drop {site}", site, _DropEdges(state, si))
            final = f"resid_post.{model.cfg.n_layers - 1}"
            reg.probe("final", final)  # after the steer at the final residual (the logits receiver)
            with torch.no_grad():
                reg.run(clean[prompt_of], need_logits=False)
            last = resid_to_logits(model, recorded(reg, "final")[:, -1])
        lds[rows] = metric.per_row(last, prompt_of.to(last.device)).cpu()
    return metric.normalise(lds.view(C, n).mean(1))


@dataclass(frozen=True)
class FaithfulnessCurve:
    """Normalised circuit metric against the number of kept edges, per scoring method and for
    random edges (``random[seed, i]``)."""

    ks: tuple[int, ...]
    curves: dict[str, Float[Tensor, " k"]]
    random: Float[Tensor, "seed k"]
    n_edges: int

    def smallest_k(self, method: str, level: float = 0.8) -> Optional[int]:
        """The fewest edges whose circuit reaches ``level`` (None if no k does)."""
        if method not in self.curves:
            raise KeyError(f"no curve for {method!r}; have {', '.join(self.curves)}")
        hit = [k for k, v in zip(self.ks, self.curves[method].tolist()) if v >= level]
        return min(hit) if hit else None


def default_ks(n_edges: int, points: int = 12) -> list[int]:
    """0, then ``points`` roughly log-spaced edge counts up to every edge."""
    check_int("n_edges", n_edges, min=1)
    check_int("points", points, min=2)
    ks = torch.logspace(0, torch.log10(torch.tensor(float(n_edges))), points).round().long().tolist()
    return sorted({0, *ks, n_edges})


def faithfulness_curve(
    model,
    clean: Int[Tensor, "n pos"],
    corrupted: Int[Tensor, "n pos"],
    metric: LogitDiffMetric,
    scores: Sequence[EdgeScores],
    ks: Optional[Sequence[int]] = None,
    *,
    random_seeds: int = 3,
    seed: int = 0,
    tokens_per_pass: int = 2048,
    progress: bool = False,
) -> FaithfulnessCurve:
    """Circuit metric of the top-k edges of every ``scores`` (one per method) and of ``random_seeds``
    random edge orders, for each k of ``ks`` (default ``default_ks``)."""
    if isinstance(scores, EdgeScores) or not isinstance(scores, Sequence) or len(scores) == 0:
        raise TypeError("scores must be a non-empty list of EdgeScores (one per method)")
    for s in scores:
        if not isinstance(s, EdgeScores):
            raise TypeError(f"scores must hold EdgeScores, got {type(s).__name__}")
    graph = scores[0].graph.check_model(model)
    if any(not torch.equal(s.graph.edges, graph.edges) for s in scores):
        raise ValueError("every EdgeScores must be of the same graph")
    methods = [s.method for s in scores]
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods repeat: {methods}")
    check_int("random_seeds", random_seeds, min=0)
    check_int("seed", seed)
    E = graph.n_edges
    ks = default_ks(E) if ks is None else [check_int("k", k, min=0, max=E) for k in ks]
    if not ks:
        raise ValueError("ks is empty")
    masks = [s.top(k) for s in scores for k in ks]
    g = torch.Generator().manual_seed(seed)
    edges = torch.nonzero(graph.edges)
    for _ in range(random_seeds):
        order = torch.randperm(E, generator=g)
        for k in ks:
            m = torch.zeros_like(graph.edges)
            m[edges[order[:k], 0], edges[order[:k], 1]] = True
            masks.append(m)
    values = circuit_metric(
        model,
        clean,
        corrupted,
        metric,
        torch.stack(masks),
        graph=graph,
        tokens_per_pass=tokens_per_pass,
        progress=progress,
    )
    K = len(ks)
    curves = {m: values[i * K : (i + 1) * K] for i, m in enumerate(methods)}
    rand = values[len(methods) * K :].view(random_seeds, K)
    return FaithfulnessCurve(tuple(ks), curves, rand, E)


__all__ = ["FaithfulnessCurve", "circuit_metric", "default_ks", "faithfulness_curve"]
