"""Edge attribution patching: a score for every edge of the graph from a few backward passes.

For an edge ``u → v`` (``workbench.circuits.graph``) the effect of restoring it to its clean value in
the corrupted run (only ``v``'s input changes, by ``Δa_u = a_u^clean − a_u^corr``) is, to first
order,

* **EAP** (Syed, Rager & Conmy 2023): ``score(u→v) = Σ_{prompt, pos, d} Δa_u · ∂M/∂x_v |_corr`` with
  ``x_v`` the receiver's input (the per-head / per-MLP copy of the residual); one backward pass for
  every edge at once.
* **EAP-IG** (Hanna, Pezzelle & Belinkov 2024): the gradient replaced by its mean along the straight
  line from the corrupted to the clean input embeddings, ``(1/m) Σ_k ∂M/∂x_v |_{e(α_k)}`` with
  ``e(α) = e_corr + α (e_clean − e_corr)`` at the token embedding and midpoints ``α_k = (k − ½)/m``;
  ``m`` backward passes.
* **EAP-RelP** (new here): the gradient replaced by the LRP relevance coefficients of relevance
  patching (Jafari et al. 2025), i.e. an ordinary backward pass through the forward rewritten by
  ``workbench.patching`` ``RelPRules`` (norms linear, identity and half rules on the MLP, optionally
  attention detached); one backward pass.

``M`` is the normalised logit-difference metric (a mean over prompts), so a score is in units of
the normalised metric (the corrupted run is 0, the clean run 1), like the grids of
``workbench.patching.attribution_patch``.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..edits import EditContext
from ..patching.attribution import GradTap
from ..patching.metric import LogitDiffMetric
from ..patching.rules import RelPRules, install_relp_rules, relp_blocker, rewrite_output
from ..registry import HookRegistry
from ..validation import check_choice, check_int
from .checks import logits_of, recorded
from .graph import Graph, group_outputs, group_site, split_inputs
from .path_patching import check_pair

METHODS = ("eap", "eap-ig", "eap-relp")
GRADIENT = RelPRules.none()  # plain gradients


def _record(model, tokens: Tensor, sites: Sequence[str]) -> dict[str, Tensor]:
    reg = HookRegistry(model)
    for s in sites:
        reg.probe(s, s)
    with torch.no_grad():
        reg.run(tokens, need_logits=False)
    return {s: recorded(reg, s) for s in sites}


def receiver_gradients(
    model,
    tokens: Int[Tensor, "n pos"],
    metric,
    sites: Sequence[str],
    *,
    rules: RelPRules = GRADIENT,
    embed: Optional[Tensor] = None,
) -> dict[str, Tensor]:
    """``∂'M/∂x`` at every receiver ``site`` from one forward and one backward pass (with split
    inputs on). ``rules`` rewrite the backward (RelP); ``embed`` replaces the token embedding (IG)."""
    with split_inputs(model):  # the split-input sites exist only while the flags are on
        reg = HookRegistry(model)
        if rules.any:
            install_relp_rules(reg, rules)
        if embed is not None:
            reg.steer("ig path", "hook_embed", _Replace(embed))
        taps = {}
        for s in sites:
            taps[s] = GradTap()
            reg.steer(f"grad {s}", s, taps[s])
        with torch.enable_grad():
            logits = logits_of(reg.run(tokens, need_logits=True))
            if rules.any:
                logits = rewrite_output(reg, logits)
            m = metric(logits)
            grads = torch.autograd.grad(m.reshape(()), [taps[s].delta for s in sites])
    return {s: g.detach() for s, g in zip(sites, grads)}


class _Replace:
    def __init__(self, values: Tensor) -> None:
        self.values = values

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        if self.values.shape != acts.shape:
            raise ValueError(f"embedding values {tuple(self.values.shape)} vs activations {tuple(acts.shape)}")
        return self.values.to(acts.dtype).clone()


@dataclass(frozen=True)
class EdgeScores:
    """``scores[u, v]`` for every edge of ``graph`` (NaN where there is no edge)."""

    graph: Graph
    scores: Float[Tensor, "sender receiver"]
    method: str

    def values(self) -> Float[Tensor, " edge"]:
        """Scores in ``graph.edge_list()`` order."""
        return self.scores[self.graph.edges]

    def ranked(self, k: Optional[int] = None) -> list[tuple[str, str, float]]:
        """Edges by decreasing |score|: (sender, receiver, score)."""
        edges = self.graph.edge_list()
        vals = self.values()
        order = torch.argsort(vals.abs(), descending=True, stable=True).tolist()
        if k is not None:
            order = order[: check_int("k", k, min=1)]
        return [
            (self.graph.senders[edges[i][0]].label, self.graph.receivers[edges[i][1]].label, float(vals[i]))
            for i in order
        ]

    def top(self, k: int) -> Tensor:
        """The circuit of the ``k`` edges with the largest |score|, as a bool mask [sender, receiver]."""
        check_int("k", k, min=0, max=self.graph.n_edges)
        mask = torch.zeros_like(self.graph.edges)
        if k == 0:
            return mask
        edges = torch.nonzero(self.graph.edges)
        order = torch.argsort(self.values().abs(), descending=True, stable=True)[:k]
        mask[edges[order, 0], edges[order, 1]] = True
        return mask


def _flat(x: Tensor) -> Tensor:
    """``[b, p, k, d] → [k, b·p·d]`` (contiguous), so that a block of edge scores is one matmul."""
    return einops.rearrange(x, "b p k d -> k (b p d)").contiguous()


def _scores_from(model, graph: Graph, delta: dict[str, Tensor], grads: dict[str, Tensor]) -> Tensor:
    """``Σ_{b, p, d} Δa_u · g_v`` for every edge: one matmul per (sender group, receiver site)."""
    scores = torch.full(graph.edges.shape, float("nan"))
    flat_g = {}
    for site, g in grads.items():
        flat_g[site] = _flat(g[:, :, None] if g.ndim == 3 else g)
    for group, rows in zip(graph.groups, graph.group_rows):
        d = _flat(group_outputs(model, group, delta[group_site(group)]))  # [k, b·p·d]
        for site, cols in zip(graph.sites, graph.site_cols):
            sub = graph.edges[list(rows)][:, list(cols)]
            if not bool(sub.any()):
                continue
            g = flat_g[site]
            block = (d.to(g.dtype) @ g.T).cpu().float()
            r_idx, c_idx = torch.tensor(rows)[:, None], torch.tensor(cols)[None, :]
            scores[r_idx, c_idx] = torch.where(sub, block, torch.full_like(block, float("nan")))
    return scores


def edge_scores(
    model,
    clean: Int[Tensor, "n pos"],
    corrupted: Int[Tensor, "n pos"],
    metric: LogitDiffMetric,
    method: str = "eap",
    *,
    steps: int = 5,
    rules: Optional[RelPRules] = None,
    graph: Optional[Graph] = None,
) -> EdgeScores:
    """Scores of every edge by ``method``: "eap", "eap-ig" (``steps`` points on the path) or
    "eap-relp" (``rules``, default the paper's ``RelPRules()``). Two forward passes record the
    senders' clean and corrupted outputs; then one backward pass (``steps`` for EAP-IG)."""
    check_choice("method", method, METHODS)
    clean, corrupted = check_pair(model, clean, corrupted, metric)
    check_int("steps", steps, min=1)
    if rules is not None and not isinstance(rules, RelPRules):
        raise TypeError(f"rules must be a RelPRules, got {type(rules).__name__}")
    if rules is not None and method != "eap-relp":
        raise ValueError(f"rules apply to method 'eap-relp' only, not {method!r}")
    if graph is not None and not isinstance(graph, Graph):
        raise TypeError(f"graph must be a Graph (Graph.of(model)), got {type(graph).__name__}")
    graph = Graph.of(model) if graph is None else graph.check_model(model)
    relp_rules = rules if rules is not None else RelPRules()
    if method == "eap-relp":
        blocker = relp_blocker(model, relp_rules)
        if blocker is not None:
            raise ValueError(f"EAP-RelP ({relp_rules.label}) does not cover this model's config: {blocker}")
    sender_sites = [group_site(g) for g in graph.groups]
    extra = ["embed"] if method == "eap-ig" else []
    c_acts = _record(model, clean, sender_sites + extra)
    x_acts = _record(model, corrupted, sender_sites + extra)
    delta = {s: c_acts[s] - x_acts[s] for s in sender_sites}
    sites = list(graph.sites)
    if method == "eap":
        grads = receiver_gradients(model, corrupted, metric, sites)
    elif method == "eap-relp":
        grads = receiver_gradients(model, corrupted, metric, sites, rules=relp_rules)
    else:
        grads = {}
        for k in range(1, steps + 1):
            alpha = (k - 0.5) / steps
            mix = x_acts["embed"] + alpha * (c_acts["embed"] - x_acts["embed"])
            g = receiver_gradients(model, corrupted, metric, sites, embed=mix)
            for s in sites:
                grads[s] = grads[s] + g[s] / steps if s in grads else g[s] / steps
    return EdgeScores(graph, _scores_from(model, graph, delta, grads), method)


def edge_scores_task(model, task, metric: LogitDiffMetric, method: str = "eap", **kw) -> EdgeScores:
    """``edge_scores`` on a ``workbench.patching.Task``."""
    return edge_scores(model, task.clean, task.corrupted, metric, method, **kw)


__all__ = ["METHODS", "EdgeScores", "edge_scores", "edge_scores_task", "receiver_gradients"]
