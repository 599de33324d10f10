"""Attribution patching (AtP) and relevance patching (RelP): every component's patching effect from
two forward passes and one backward pass.

**AtP** (Nanda 2023, "Attribution patching"; Syed, Rager & Conmy 2023): the first-order estimate of
patching activation ``a`` from corrupted to clean,

    ĉ(a) = Σ_d (a_clean − a_corr)_d · ∂M/∂a_d |_corr

**RelP** (Jafari, Eberle, Khakzar & Nanda 2025, "RelP: Faithful and efficient circuit discovery via
relevance patching"): the same product, with ``∂M/∂a`` replaced by LRP propagation coefficients.
They are an ordinary backward pass through a forward rewritten so that (sg = stop-gradient):

* norms: divide by ``sg[σ]`` — LN-rule (Ali et al. 2022), the norm becomes linear;
* elementwise activations: ``φ(x) → x · sg[φ(x)/x]`` — identity rule;
* gated units ``g = φ(a) ⊙ b``: ``g/2 + sg[g/2]`` — half rule (each factor gets half the relevance);
* optionally attention: ``sg[softmax(scores)]`` — AH-rule / CP-LRP (off by default, as in the paper's
  default rule list).

The rewrite is done with ``HookRegistry`` steers at TransformerLens hook points, whose edits return
the *same values* with a different gradient (``v_new = sg[v] + (g − sg[g])`` is exactly ``v`` in
floating point, and its gradient is that of ``g``):

* ``blocks.L.ln{1,2}.hook_scale``, ``ln_final.hook_scale``: ``sg[scale]``;
* ``blocks.L.mlp.hook_post``: rebuilt from ``hook_pre`` / ``hook_pre_linear`` read by ``detach=False``
  probes: ``post' = sg[post] + (h − sg[h])`` with ``h = ½ · (pre · sg[φ(pre)/pre]) ⊙ pre_linear``
  (gated) or ``h = pre · sg[φ(pre)/pre]`` (plain MLP);
* ``blocks.L.attn.hook_pattern``: ``sg[pattern]``.

Gradients with respect to each patched activation are read through "taps": steers whose edit is
``a + δ`` with a zero leaf ``δ`` (so ``∂M/∂δ = ∂M/∂a`` while the value is unchanged); the clean and
corrupted values come from probes.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch
from jaxtyping import Int
from torch import Tensor

from ..edits import EditContext
from ..registry import HookRegistry
from .activation import SITE_STREAM, check_stream
from .tasks import LogitDiffMetric, Task


@dataclass(frozen=True)
class RelPRules:
    """Which LRP rules rewrite the backward pass (Jafari et al. 2025). ``RelPRules.none()`` is plain
    gradients (AtP)."""

    norm: bool = True
    identity: bool = True
    half: bool = True
    attention: bool = False

    def __post_init__(self) -> None:
        for k in ("norm", "identity", "half", "attention"):
            if not isinstance(getattr(self, k), bool):
                raise TypeError(f"RelPRules.{k} must be a bool, got {getattr(self, k)!r}")

    @classmethod
    def none(cls) -> "RelPRules":
        return cls(False, False, False, False)

    @property
    def any(self) -> bool:
        return self.norm or self.identity or self.half or self.attention

    @property
    def label(self) -> str:
        on = [k for k in ("norm", "identity", "half", "attention") if getattr(self, k)]
        return "+".join(on) if on else "gradient"


def same_value_new_grad(value: Tensor, graded: Tensor) -> Tensor:
    """``sg[value] + (graded − sg[graded])``: equals ``value`` exactly (``x − x`` is +0 in floating
    point), while its gradient is that of ``graded``."""
    return value.detach() + (graded - graded.detach())


def _safe_ratio(num: Tensor, den: Tensor, at_zero: float) -> Tensor:
    """``num/den`` with ``at_zero`` where ``den == 0`` (the limit φ(x)/x at 0 is φ'(0))."""
    zero = den == 0
    return torch.where(zero, torch.full_like(num, at_zero), num / torch.where(zero, torch.ones_like(den), den))


class _Detach:
    """Edit: same value, no gradient (LN-rule on ``hook_scale``, AH-rule on ``hook_pattern``)."""

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        return acts.detach().clone()

    def __repr__(self) -> str:
        return "Detach()"


class _MLPRule:
    """Edit at ``blocks.L.mlp.hook_post``: rebuild the post-activation from the recorded
    ``pre``/``pre_linear`` so that its gradient follows the identity and/or half rule."""

    def __init__(
        self, registry: HookRegistry, mlp, pre: str, pre_linear: Optional[str], identity: bool, half: bool
    ) -> None:
        self.reg, self.mlp, self.pre, self.pre_linear = registry, mlp, pre, pre_linear
        self.identity, self.half = identity, half

    def __call__(self, post: Tensor, ctx: EditContext) -> Tensor:
        pre = self.reg.records[self.pre]
        if not isinstance(pre, Tensor) or pre.shape[:2] != post.shape[:2]:
            raise ValueError(
                "RelP rules need unpadded inputs of equal length (the recorded pre-activation does not match post)"
            )
        act = self.mlp.act_fn(pre)
        phi = pre * _safe_ratio(act, pre, 0.5).detach() if self.identity else act
        if self.pre_linear is None:
            graded = phi
        else:
            lin = self.reg.records[self.pre_linear]
            graded = phi * lin * (0.5 if self.half else 1.0)
        return same_value_new_grad(post, graded)

    def __repr__(self) -> str:
        return f"MLPRule(identity={self.identity}, half={self.half})"


def install_relp_rules(registry: HookRegistry, rules: RelPRules, *, prefix: str = "_relp") -> list[str]:
    """Register the steers (and the probes they read) that rewrite the backward pass; returns the
    names, so they can be removed again."""
    model = registry.model
    cfg = model.cfg
    names: list[str] = []
    if rules.norm:
        if cfg.normalization_type is None:
            raise ValueError("the LN-rule needs a model with normalisation layers (normalization_type is None)")
        for L in range(cfg.n_layers):
            for ln in ("ln1", "ln2"):
                if f"blocks.{L}.{ln}.hook_scale" in model.hook_dict:
                    registry.steer(f"{prefix}.{ln}.{L}", f"blocks.{L}.{ln}.hook_scale", _Detach())
                    names.append(f"{prefix}.{ln}.{L}")
        if "ln_final.hook_scale" in model.hook_dict:
            registry.steer(f"{prefix}.ln_final", "ln_final.hook_scale", _Detach())
            names.append(f"{prefix}.ln_final")
    if rules.identity or rules.half:
        if cfg.act_fn is not None and cfg.act_fn.startswith(("solu", "ln")):
            raise ValueError(f"RelP MLP rules do not support act_fn={cfg.act_fn!r} (an activation with a norm inside)")
        gated = bool(cfg.gated_mlp)
        if rules.half and not gated and not rules.identity:
            pass  # no gated unit: the half rule has nothing to act on
        else:
            for L in range(cfg.n_layers):
                pre = f"{prefix}.pre.{L}"
                registry.probe(pre, f"blocks.{L}.mlp.hook_pre", detach=False)
                names.append(pre)
                lin = None
                if gated:
                    lin = f"{prefix}.pre_linear.{L}"
                    registry.probe(lin, f"blocks.{L}.mlp.hook_pre_linear", detach=False)
                    names.append(lin)
                rule = _MLPRule(registry, model.blocks[L].mlp, pre, lin, rules.identity, rules.half and gated)
                registry.steer(f"{prefix}.mlp.{L}", f"blocks.{L}.mlp.hook_post", rule)
                names.append(f"{prefix}.mlp.{L}")
    if rules.attention:
        for L in range(cfg.n_layers):
            registry.steer(f"{prefix}.pattern.{L}", f"blocks.{L}.attn.hook_pattern", _Detach())
            names.append(f"{prefix}.pattern.{L}")
    return names


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
    rules: RelPRules = RelPRules(),
) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
    """One forward (with the rewritten backward when ``rules`` has any rule) and one backward.

    Returns ``(metric value, {site: activation}, {site: ∂'M/∂activation})`` where ∂' is the plain
    gradient (no rules) or the LRP coefficient (RelP)."""
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
        m = metric(logits)
        grads = torch.autograd.grad(m, [taps[s].delta for s in sites])
    values = {s: reg.records[f"v:{s}"] for s in sites}
    return m.detach(), values, {s: g.detach() for s, g in zip(sites, grads)}


def _reduce(stream: str, prod: Tensor) -> Tensor:
    """Sum the per-feature products into the grid cell of ``stream`` (summed over prompts):
    layer×pos streams sum d; heads_all_pos sums pos and d_head; heads_by_pos sums d_head."""
    if stream in ("resid_pre", "attn_out", "mlp_out"):
        return prod.sum(-1).sum(0)  # [pos]
    if stream == "heads_all_pos":
        return prod.sum(-1).sum(1).sum(0)  # [head]
    return prod.sum(-1).sum(0)  # [pos, head]


def attribution_patch(
    model,
    clean: Int[Tensor, "n pos"],
    corrupted: Int[Tensor, "n pos"],
    metric: LogitDiffMetric,
    streams: Sequence[str] = ("resid_pre", "attn_out", "mlp_out"),
    *,
    rules: RelPRules = RelPRules.none(),
) -> dict[str, Tensor]:
    """AtP (``rules=RelPRules.none()``) or RelP (default ``RelPRules()``) estimates of the
    activation-patching grids of ``streams``, shaped like ``activation_patch``'s: one clean forward
    (probes), one corrupted forward and one backward for every layer and stream at once.

    Entry = ``Σ_prompts Σ_d (a_clean − a_corr) · ∂'M/∂a`` with M the normalised metric (a mean over
    prompts), i.e. the first-order estimate of the patched grid value (corrupted = 0)."""
    for s in streams:
        check_stream(s)
    if clean.shape != corrupted.shape or clean.ndim != 2:
        raise ValueError(
            f"clean and corrupted tokens must be [n, pos] of equal shape, got {tuple(clean.shape)} and {tuple(corrupted.shape)}"
        )
    n_layers = model.cfg.n_layers
    site_names = sorted({f"{SITE_STREAM[s]}.{L}" for s in streams for L in range(n_layers)})
    reg = HookRegistry(model)
    for s in site_names:
        reg.probe(s, s)
    with torch.no_grad():
        reg.run(clean, need_logits=False)
    clean_vals = {s: reg.records[s] for s in site_names}
    _, corr_vals, grads = relp_gradients(model, corrupted, metric, site_names, rules)
    out = {}
    for stream in streams:
        rows = []
        for L in range(n_layers):
            s = f"{SITE_STREAM[stream]}.{L}"
            rows.append(_reduce(stream, (clean_vals[s] - corr_vals[s]) * grads[s]))
        out[stream] = torch.stack(rows, 0)
    return out


def atp(
    model, task: Task, metric: LogitDiffMetric, streams: Sequence[str] = ("resid_pre", "attn_out", "mlp_out")
) -> dict[str, Tensor]:
    """Attribution patching (Nanda 2023; Syed et al. 2023) on a task."""
    return attribution_patch(model, task.clean, task.corrupted, metric, streams, rules=RelPRules.none())


def relp(
    model,
    task: Task,
    metric: LogitDiffMetric,
    streams: Sequence[str] = ("resid_pre", "attn_out", "mlp_out"),
    *,
    attention: bool = False,
) -> dict[str, Tensor]:
    """Relevance patching (Jafari et al. 2025) on a task; ``attention=True`` adds the AH-rule."""
    return attribution_patch(model, task.clean, task.corrupted, metric, streams, rules=RelPRules(attention=attention))


__all__ = [
    "GradTap",
    "RelPRules",
    "atp",
    "attribution_patch",
    "install_relp_rules",
    "relp",
    "relp_gradients",
    "same_value_new_grad",
]
