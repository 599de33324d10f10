"""Attribution patching (AtP) and relevance patching (RelP): every component's patching effect from
two forward passes and one backward pass.

**AtP** (Nanda 2023, "Attribution patching"; Syed, Rager & Conmy 2023): the first-order estimate of
patching activation ``a`` from corrupted to clean,

    ĉ(a) = Σ_d (a_clean − a_corr)_d · ∂M/∂a_d |_corr

**RelP** (Jafari, Eberle, Khakzar & Nanda 2025): the same product, with ``∂M/∂a`` replaced by LRP
propagation coefficients: the backward pass of a forward rewritten by the rules of
``workbench.patching.rules`` (same values, other gradients).

Gradients with respect to each patched activation are read through "taps": steers whose edit is
``a + δ`` with a zero leaf ``δ`` (so ``∂M/∂δ = ∂M/∂a`` while the value is unchanged); the clean and
corrupted values come from probes.
"""

from collections.abc import Sequence
from typing import Optional

import torch
from jaxtyping import Int
from torch import Tensor

from ..edits import EditContext
from ..registry import HookRegistry
from .activation import LAYER_POS_STREAMS, SITE_STREAM, check_stream, check_token_pair
from .metric import LogitDiffMetric
from .rules import RelPRules, install_relp_rules, recorded, relp_blocker, rewrite_output, same_value_new_grad
from .tasks import Task

DEFAULT_STREAMS = ("resid_pre", "attn_out", "mlp_out")
GRADIENT = RelPRules.none()  # plain gradients: AtP
PAPER_RULES = RelPRules()  # RelP with the paper's default rules


class GradTap:
    """Edit ``a ↦ a + δ`` with ``δ`` a zero leaf that requires grad: the value is unchanged and
    ``∂M/∂δ = ∂M/∂a``."""

    def __init__(self) -> None:
        self.delta: Optional[Tensor] = None

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        if self.delta is None or self.delta.shape != acts.shape:
            self.delta = torch.zeros_like(acts, requires_grad=True)
        return acts + self.delta

    def __repr__(self) -> str:
        return "GradTap()"


def relp_gradients(
    model,
    tokens: Int[Tensor, "n pos"],
    metric,
    sites: Sequence[str],
    rules: RelPRules = PAPER_RULES,
) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
    """One forward (with the rewritten backward when ``rules`` has any rule) and one backward.

    ``metric`` maps the logits ``[n, pos, d_vocab]`` to a scalar. Returns ``(metric value,
    {site: activation}, {site: ∂'M/∂activation})`` where ∂' is the plain gradient (no rules) or the
    LRP coefficient (RelP). The forward values are those of the normal forward pass."""
    if not callable(metric):
        raise TypeError(f"metric must be callable (logits -> scalar), got {type(metric).__name__}")
    if isinstance(sites, str) or len(sites) == 0:
        raise ValueError(f"sites must be a non-empty list of site names, got {sites!r}")
    if not isinstance(rules, RelPRules):
        raise TypeError(f"rules must be a RelPRules, got {type(rules).__name__}")
    reg = HookRegistry(model)
    if rules.any:  # rules first: a tap at a rewritten site then sees (and differentiates) the rewritten value
        install_relp_rules(reg, rules)
    taps = {}
    for s in sites:
        reg.probe(f"v:{s}", s, when="before")
        taps[s] = GradTap()
        reg.steer(f"g:{s}", s, taps[s])
    with torch.enable_grad():
        logits = reg.run(tokens, need_logits=True)
        if logits is None:  # need_logits=True always returns them; a None here is a registry bug
            raise RuntimeError("the registry returned no logits for a run with need_logits=True")
        if rules.any:
            logits = rewrite_output(reg, logits)
        m = metric(logits)
        if not isinstance(m, Tensor) or m.numel() != 1:
            raise ValueError(f"metric must return a scalar tensor, got {type(m).__name__} {getattr(m, 'shape', '')}")
        grads = torch.autograd.grad(m.reshape(()), [taps[s].delta for s in sites])
    values = {s: recorded(reg, f"v:{s}") for s in sites}
    return m.detach(), values, {s: g.detach() for s, g in zip(sites, grads)}


def _reduce(stream: str, prod: Tensor) -> Tensor:
    """Sum the per-feature products into the grid cell of ``stream`` (summed over prompts):
    layer×pos streams sum d; heads_all_pos sums pos and d_head; heads_by_pos sums d_head."""
    if stream in LAYER_POS_STREAMS:
        return prod.sum(-1).sum(0)  # [pos]
    if stream == "heads_all_pos":
        return prod.sum(-1).sum(1).sum(0)  # [head]
    return prod.sum(-1).sum(0)  # [pos, head]


def attribution_patch(
    model,
    clean: Int[Tensor, "n pos"],
    corrupted: Int[Tensor, "n pos"],
    metric: LogitDiffMetric,
    streams: Sequence[str] = DEFAULT_STREAMS,
    *,
    rules: RelPRules = GRADIENT,
) -> dict[str, Tensor]:
    """Estimates of the activation-patching grids of ``streams``, shaped like ``activation_patch``'s:
    one clean forward (probes), one corrupted forward and one backward for every layer and stream at
    once. By default (``rules=RelPRules.none()``) plain gradients, i.e. AtP; ``rules=RelPRules()``
    gives RelP with the paper's default rules (``relp`` and ``atp`` are the task-level shortcuts).

    Entry = ``Σ_prompts Σ_d (a_clean − a_corr) · ∂'M/∂a`` with M the normalised metric (a mean over
    prompts), i.e. the first-order estimate of the patched grid value (corrupted = 0)."""
    if isinstance(streams, str) or not isinstance(streams, Sequence) or len(streams) == 0:
        raise ValueError(f"streams must be a non-empty list of stream names, got {streams!r}")
    streams = list(dict.fromkeys(check_stream(s) for s in streams))
    check_token_pair(model, clean, corrupted)
    if not callable(metric):
        raise TypeError(f"metric must be callable (logits -> scalar), got {type(metric).__name__}")
    if not isinstance(rules, RelPRules):
        raise TypeError(f"rules must be a RelPRules, got {type(rules).__name__}")
    blocker = relp_blocker(model, rules)
    if blocker is not None:  # refuse before any forward pass
        raise ValueError(f"RelP ({rules.label}) does not cover this model's config: {blocker}")
    n_layers = model.cfg.n_layers
    site_names = sorted({f"{SITE_STREAM[s]}.{L}" for s in streams for L in range(n_layers)})
    reg = HookRegistry(model)
    for s in site_names:
        reg.probe(s, s)
    with torch.no_grad():
        reg.run(clean, need_logits=False)
    clean_vals = {s: recorded(reg, s) for s in site_names}
    _, corr_vals, grads = relp_gradients(model, corrupted, metric, site_names, rules)
    out = {}
    for stream in streams:
        rows = []
        for L in range(n_layers):
            s = f"{SITE_STREAM[stream]}.{L}"
            rows.append(_reduce(stream, (clean_vals[s] - corr_vals[s]) * grads[s]))
        out[stream] = torch.stack(rows, 0)
    return out


def atp(model, task: Task, metric: LogitDiffMetric, streams: Sequence[str] = DEFAULT_STREAMS) -> dict[str, Tensor]:
    """Attribution patching (Nanda 2023; Syed et al. 2023) on a task."""
    return attribution_patch(model, task.clean, task.corrupted, metric, streams, rules=RelPRules.none())


def relp(
    model,
    task: Task,
    metric: LogitDiffMetric,
    streams: Sequence[str] = DEFAULT_STREAMS,
    *,
    attention: bool = False,
) -> dict[str, Tensor]:
    """Relevance patching (Jafari et al. 2025) on a task; ``attention=True`` adds the AH-rule."""
    return attribution_patch(model, task.clean, task.corrupted, metric, streams, rules=RelPRules(attention=attention))


__all__ = [
    "DEFAULT_STREAMS",
    "GRADIENT",
    "PAPER_RULES",
    "GradTap",
    "RelPRules",
    "atp",
    "attribution_patch",
    "install_relp_rules",
    "relp",
    "relp_blocker",
    "relp_gradients",
    "rewrite_output",
    "same_value_new_grad",
]
