"""The LRP rules of relevance patching (RelP; Jafari, Eberle, Khakzar & Nanda 2025, "RelP: Faithful
and efficient circuit discovery via relevance patching"), as a rewrite of the backward pass.

RelP replaces ``∂M/∂a`` in attribution patching by LRP propagation coefficients. They are an
ordinary backward pass through a forward rewritten so that (sg = stop-gradient):

* norms: divide by ``sg[σ]`` — LN-rule (Ali et al. 2022), the norm becomes linear;
* elementwise non-linearities ``φ(x) → x · sg[φ(x)/x]`` — identity rule: the MLP activation, and the
  output soft-cap ``c · tanh(x / c)`` where the config has one (Gemma-2);
* gated units ``g = φ(a) ⊙ b``: ``g/2 + sg[g/2]`` — half rule (each factor gets half the relevance);
* optionally attention: ``sg[softmax(scores)]`` — AH-rule / CP-LRP (off by default, as in the paper's
  default rule list).

The rewrite uses ``HookRegistry`` steers at TransformerLens hook points whose edits return the *same
values* with a different gradient (``v_new = sg[v] + (g − sg[g])`` is exactly ``v`` in floating point,
and its gradient is that of ``g``):

* every normalisation's ``hook_scale`` (``ln1``, ``ln2``, Gemma-2's ``ln1_post``/``ln2_post``,
  ``ln_final``, and any other norm the config builds, e.g. q/k norms): ``sg[scale]``;
* ``blocks.L.mlp.hook_post``: rebuilt from ``hook_pre`` / ``hook_pre_linear`` read by ``detach=False``
  probes: ``post' = sg[post] + (h − sg[h])`` with ``h = ½ · (pre · sg[φ(pre)/pre]) ⊙ pre_linear``
  (gated) or ``h = pre · sg[φ(pre)/pre]`` (plain MLP);
* ``blocks.L.attn.hook_pattern``: ``sg[pattern]``;
* the output soft-cap, which has no hook point: ``rewrite_output`` rebuilds the logits from the
  final normalised residual (probed with ``detach=False``).

Configs whose forward has a non-linearity these rules do not cover are refused by ``relp_blocker``,
naming the config field; RelP never silently computes something else.
"""

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from ..backends import as_backend
from ..edits import EditContext
from ..registry import HookRegistry
from ..validation import check_fields

_RULES = ("norm", "identity", "half", "attention")


@dataclass(frozen=True)
class RelPRules:
    """Which LRP rules rewrite the backward pass (Jafari et al. 2025). ``RelPRules()`` is the paper's
    default list; ``RelPRules.none()`` is plain gradients (AtP)."""

    norm: bool = True  # LN-rule: normalisations linear (scale detached)
    identity: bool = True  # identity rule on elementwise non-linearities (MLP activation, output soft-cap)
    half: bool = True  # half rule on gated units
    attention: bool = False  # AH-rule / CP-LRP: attention pattern detached

    def __post_init__(self) -> None:
        check_fields(self, **{k: {"kind": "bool"} for k in _RULES})

    @classmethod
    def none(cls) -> "RelPRules":
        return cls(False, False, False, False)

    @property
    def any(self) -> bool:
        return self.norm or self.identity or self.half or self.attention

    @property
    def label(self) -> str:
        on = [k for k in _RULES if getattr(self, k)]
        return "+".join(on) if on else "gradient"


def relp_blocker(model, rules: RelPRules) -> Optional[str]:
    """Why ``rules`` cannot be applied faithfully to ``model`` (naming the config field), or None."""
    if not rules.any:
        return None
    rewrite = as_backend(model).rewrite_blocker
    if rewrite is not None:  # a TransformerBridge: no HookedTransformer modules to rewrite
        return rewrite
    cfg = model.cfg
    if getattr(cfg, "clip_qkv", None) is not None:
        return f"clip_qkv={cfg.clip_qkv}: the clamp of q/k/v is a non-linearity no RelP rule rewrites"
    if (rules.identity or rules.half) and not cfg.attn_only:
        if getattr(cfg, "num_experts", None):
            return f"num_experts={cfg.num_experts}: the RelP MLP rules cover dense MLPs, not mixtures of experts"
        act = cfg.act_fn or ""
        if act.startswith("solu") or cfg.is_layer_norm_activation():
            return f"act_fn={cfg.act_fn!r}: not an elementwise activation (the identity rule needs φ(x) per unit)"
    return None


def recorded(registry: HookRegistry, name: str) -> Tensor:
    """The tensor a probe recorded over one unpadded forward (a ragged list means the inputs were not
    of equal length, which patching does not accept)."""
    value = registry.records[name]
    if not isinstance(value, Tensor):
        raise ValueError(f"probe '{name}' recorded rows of different lengths; patching needs unpadded inputs")
    return value


def same_value_new_grad(value: Tensor, graded: Tensor) -> Tensor:
    """``sg[value] + (graded − sg[graded])``: equals ``value`` exactly (``x − x`` is +0 in floating
    point), while its gradient is that of ``graded``."""
    return value.detach() + (graded - graded.detach())


def _safe_ratio(num: Tensor, den: Tensor, at_zero: float) -> Tensor:
    """``num/den`` with ``at_zero`` where ``den == 0`` (the limit φ(x)/x at 0 is φ'(0))."""
    zero = den == 0
    return torch.where(zero, torch.full_like(num, at_zero), num / torch.where(zero, torch.ones_like(den), den))


def _slope_at_zero(act_fn) -> float:
    """``φ'(0)``, the limit of ``φ(x)/x`` at 0 (0.5 for GELU and SiLU), by autograd."""
    x = torch.zeros(1, requires_grad=True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(act_fn(x).sum(), x)
    return float(g)


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
        self.at_zero = _slope_at_zero(mlp.act_fn) if identity else 0.0

    def __call__(self, post: Tensor, ctx: EditContext) -> Tensor:
        pre = recorded(self.reg, self.pre)
        if pre.shape[:2] != post.shape[:2]:
            raise ValueError(
                "RelP rules need unpadded inputs of equal length (the recorded pre-activation does not match post)"
            )
        act = self.mlp.act_fn(pre)
        phi = pre * _safe_ratio(act, pre, self.at_zero).detach() if self.identity else act
        if self.pre_linear is None:
            graded = phi
        else:
            lin = recorded(self.reg, self.pre_linear)
            graded = phi * lin * (0.5 if self.half else 1.0)
        return same_value_new_grad(post, graded)

    def __repr__(self) -> str:
        return f"MLPRule(identity={self.identity}, half={self.half})"


def _readout_probe(prefix: str) -> str:
    return f"{prefix}.readout"


def install_relp_rules(registry: HookRegistry, rules: RelPRules, *, prefix: str = "_relp") -> list[str]:
    """Register the steers (and the probes they read) that rewrite the backward pass; returns the
    names, so they can be removed again. Refuses (``ValueError`` naming the config field) a model
    whose forward these rules do not cover. Apply ``rewrite_output`` to the run's logits to complete
    the rewrite (the output soft-cap has no hook point)."""
    if not isinstance(rules, RelPRules):
        raise TypeError(f"rules must be a RelPRules, got {type(rules).__name__}")
    model = registry.model
    cfg = model.cfg
    blocker = relp_blocker(model, rules)
    if blocker is not None:
        raise ValueError(f"RelP ({rules.label}) does not cover this model's config: {blocker}")
    names: list[str] = []

    def steer(name: str, site: str, edit) -> None:
        registry.steer(name, site, edit)
        names.append(name)

    if rules.norm:  # every normalisation of the config (none: nothing to linearise)
        for hook in model.hook_dict:
            if hook.endswith("hook_scale"):
                steer(f"{prefix}.norm.{hook}", hook, _Detach())
    if (rules.identity or rules.half) and not cfg.attn_only:
        gated = bool(cfg.gated_mlp)
        if rules.identity or gated:  # a plain MLP with the half rule alone has nothing to rewrite
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
                steer(f"{prefix}.mlp.{L}", f"blocks.{L}.mlp.hook_post", rule)
    if rules.attention:
        for L in range(cfg.n_layers):
            steer(f"{prefix}.pattern.{L}", f"blocks.{L}.attn.hook_pattern", _Detach())
    if rules.identity and getattr(cfg, "output_logits_soft_cap", -1.0) > 0:
        site = "ln_final.hook_normalized" if cfg.normalization_type is not None else f"resid_post.{cfg.n_layers - 1}"
        registry.probe(_readout_probe(prefix), site, detach=False)
        names.append(_readout_probe(prefix))
    return names


def rewrite_output(registry: HookRegistry, logits: Tensor, *, prefix: str = "_relp") -> Tensor:
    """The run's ``logits`` with the identity rule on the output soft-cap, ``softcap(u) → u ·
    sg[softcap(u)/u]`` (same values, LRP gradient), when ``install_relp_rules`` registered it;
    otherwise ``logits`` unchanged. ``u`` are the pre-cap logits, recomputed from the probed final
    normalised residual by the model's own unembedding."""
    name = _readout_probe(prefix)
    if name not in registry.records:
        return logits
    normed = recorded(registry, name)
    pre_cap = registry.model.unembed(normed)  # the readout before its soft-cap (workbench.readout adds the cap)
    if pre_cap.shape != logits.shape:
        raise ValueError(f"RelP output rule: pre-cap logits {tuple(pre_cap.shape)} vs logits {tuple(logits.shape)}")
    return same_value_new_grad(logits, pre_cap * _safe_ratio(logits, pre_cap, 1.0).detach())


__all__ = [
    "RelPRules",
    "install_relp_rules",
    "recorded",
    "relp_blocker",
    "rewrite_output",
    "same_value_new_grad",
]
