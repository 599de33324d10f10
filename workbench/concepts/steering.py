"""Steering edits built from concept vectors. Each is a pure ``(acts, ctx) -> new acts`` callable
that plugs into ``HookRegistry.steer(name, site, edit, positions=...)``, so it acts during prompt
processing and KV-cached generation on exactly the positions the user selects.

- ``AddVector`` (from ``workbench.edits``): ``h ← h + α·v`` (ActAdd, CAA, mean-centring, PCA).
- ``GCAVEdit``: per-sample, per-position closed form of GCAV (Zhang et al. 2025) — the smallest move
  along ``v = w/‖w‖`` that brings the probe probability to a target (up to ``p⁺`` or down to ``p⁻``).
- ``ProjectOut`` (from ``workbench.edits``): directional ablation ``h ← h − r̂ r̂ᵀ h`` (Arditi et al. 2024).
- ``AblateAndAdd``: ``h ← h − r̂ r̂ᵀ h + α·r`` (ablate, then induce; Arditi et al. 2024), the composition
  ``ProjectOut(r)`` then ``AddVector(r, α)``.
- ``ACEEdit``: ``h ← h − r̂ r̂ᵀ (h − μ₀) + α·r`` (Marshall et al. 2024), the projection conjugated by the
  translation to the reference point, then the push: ``AddVector(μ₀, −1)``, ``ProjectOut(r)``,
  ``AddVector(μ₀, 1)``, ``AddVector(r, α)``.
- ``RowGroups``: different edits for different row blocks of one batch (runs many steering
  conditions in one generation call).

``steering_edit(vector, strength, toward)`` asks the vector's registered method for its edit.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Optional

import torch
from jaxtyping import Float
from torch import Tensor

from ..edits import AddVector, Compose, Edit, EditContext, ProjectOut, as_direction, as_vector, check_width
from ..validation import check_choice, check_float
from .method import Scale, Toward, get_method
from .vectors import ConceptVector


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def gcav_epsilon(
    h: Float[Tensor, "... d"],
    w: Float[Tensor, " d"],
    b: float,
    target: float,
    mode: Literal["add", "remove"],
    *,
    logit: bool = False,
) -> Float[Tensor, "..."]:
    """GCAV's per-sample magnitude (Zhang et al. 2025), METHODS.md §1:
    add: ``ε = max(0, (logit(p⁺) − b − wᵀh)/‖w‖)``; remove: ``ε = max(0, (wᵀh + b − logit(p⁻))/‖w‖)``.
    Computed in float64 per position; ``logit=True`` means ``target`` is already a logit."""
    wd = w.to(h.device, torch.float64)
    z = h.double() @ wd + b
    t = float(target) if logit else _logit(target)
    gap = (t - z) if mode == "add" else (z - t)
    return (gap / wd.norm()).clamp_min(0.0)


@dataclass(frozen=True)
class GCAVEdit:
    """Move each selected activation along ``v = w/‖w‖`` just enough that ``σ(wᵀh + b)`` reaches
    ``target``: ``mode="add"`` raises it to at least ``target``, ``mode="remove"`` lowers it to at
    most ``target``; positions already past the target are left unchanged (ε = 0). The target can be
    given as a logit instead (``target_logit``), for targets too close to 0 or 1 for a float."""

    w: Tensor
    b: float
    target: Optional[float] = None
    mode: Literal["add", "remove"] = "add"
    target_logit: Optional[float] = None
    _w: Tensor = field(init=False, repr=False, compare=False)
    _z: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        w = as_direction(self.w, "GCAVEdit.w", "push along").float()
        check_float("GCAVEdit.b", self.b)
        if (self.target is None) == (self.target_logit is None):
            raise ValueError("give GCAVEdit exactly one of target (a probability) or target_logit")
        if self.target is not None and not 0.0 < float(self.target) < 1.0:
            raise ValueError(f"GCAVEdit.target must be a probability strictly between 0 and 1, got {self.target!r}")
        if self.target_logit is not None:
            check_float("GCAVEdit.target_logit", self.target_logit)
        check_choice("GCAVEdit.mode", self.mode, ("add", "remove"))
        object.__setattr__(self, "_w", w)
        object.__setattr__(
            self, "_z", _logit(float(self.target)) if self.target is not None else float(self.target_logit)
        )

    @classmethod
    def from_vector(
        cls,
        vector: ConceptVector,
        target: Optional[float] = None,
        mode: str = "add",
        *,
        target_logit: Optional[float] = None,
    ) -> "GCAVEdit":
        """GCAV with the probe a vector carries (``w = ‖w‖·v`` and ``b``; the ``logistic`` method)."""
        if vector.bias is None or "w_norm" not in vector.params:
            raise ValueError(
                f"GCAV needs a vector with a logistic probe (a bias and params['w_norm']), got a {vector.method!r} one"
            )
        return cls(vector.unit * vector.params["w_norm"], float(vector.bias), target, mode, target_logit)

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        check_width(self._w, acts, "GCAVEdit.w")
        eps = gcav_epsilon(acts, self._w, self.b, self._z, self.mode, logit=True)
        v = (self._w / self._w.norm()).to(acts.device, torch.float64)
        sign = 1.0 if self.mode == "add" else -1.0
        return (acts.double() + sign * eps[..., None] * v).to(acts.dtype)

    def __repr__(self) -> str:
        return f"GCAVEdit({self.mode} to logit {self._z:.3g}, |w|={self._w.norm():.3g}, b={self.b:.3g})"


class _ComposedAlong:
    """Shared by edits defined as a ``Compose`` of basic edits along a direction ``_r``."""

    _r: Tensor
    _steps: Compose
    coeff: float

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        check_width(self._r, acts, f"{type(self).__name__}.r")
        return self._steps(acts, ctx)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(|r|={self._r.norm():.3g}, coeff={self.coeff:g})"


@dataclass(frozen=True, repr=False)
class AblateAndAdd(_ComposedAlong):
    """``h ← h − r̂ r̂ᵀ h + α·r``: directional ablation followed by inducing ``α·r`` (Arditi et al. 2024;
    ``α = 0`` is pure ablation). The edit is ``Compose(ProjectOut(r), AddVector(r, α))``."""

    r: Tensor
    coeff: float = 0.0
    _r: Tensor = field(init=False, repr=False, compare=False)
    _steps: Compose = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        r = as_direction(self.r, "AblateAndAdd.r", "ablate").float()
        coeff = check_float("AblateAndAdd.coeff", self.coeff)
        object.__setattr__(self, "_r", r)
        object.__setattr__(self, "_steps", Compose(ProjectOut(r), AddVector(r, coeff)))


@dataclass(frozen=True, repr=False)
class ACEEdit(_ComposedAlong):
    """Affine concept editing (Marshall et al. 2024): ``h ← h − r̂ r̂ᵀ (h − μ₀) + α·r``. The component of
    ``h`` along ``r̂`` is set to that of the reference point ``μ₀``, then ``α·r`` is added: the projection
    about ``μ₀`` (translate by ``−μ₀``, ``ProjectOut(r)``, translate back) followed by ``AddVector(r, α)``."""

    r: Tensor
    mu0: Tensor
    coeff: float = 0.0
    _r: Tensor = field(init=False, repr=False, compare=False)
    _steps: Compose = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        r = as_direction(self.r, "ACEEdit.r", "edit").float()
        mu0 = as_vector(self.mu0, "ACEEdit.mu0").float()
        if mu0.shape != r.shape:
            raise ValueError(f"ACEEdit.mu0 has shape {tuple(mu0.shape)} but r has {tuple(r.shape)}")
        coeff = check_float("ACEEdit.coeff", self.coeff)
        object.__setattr__(self, "_r", r)
        steps = Compose(AddVector(mu0, -1.0), ProjectOut(r), AddVector(mu0, 1.0), AddVector(r, coeff))
        object.__setattr__(self, "_steps", steps)

    @classmethod
    def from_vector(cls, vector: ConceptVector, coeff: float) -> "ACEEdit":
        if "mu0" not in vector.extras:
            raise ValueError(
                "ACE needs a ConceptVector with a reference point (extras['mu0']); fit it with method='ace'"
            )
        return cls(vector.direction, vector.extras["mu0"], coeff)


@dataclass(frozen=True)
class RowGroups:
    """Apply ``edits[i]`` to rows ``[sum(sizes[:i]), sum(sizes[:i+1]))`` of the batch; ``None`` leaves a
    block unchanged. Lets one generation call run many steering conditions side by side."""

    edits: Sequence  # tuple after __post_init__
    sizes: Sequence[int]  # tuple after __post_init__

    def __post_init__(self) -> None:
        object.__setattr__(self, "edits", tuple(self.edits))
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))
        if len(self.edits) != len(self.sizes) or not self.sizes or min(self.sizes) < 1:
            raise ValueError(
                f"RowGroups needs one positive size per edit, got {len(self.edits)} edits and sizes {self.sizes}"
            )
        for i, e in enumerate(self.edits):
            if e is not None and not callable(e):
                raise TypeError(f"RowGroups edit {i} must be None or callable (acts, ctx) -> acts, got {e!r}")

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        if acts.shape[0] != sum(self.sizes):
            raise ValueError(f"RowGroups covers {sum(self.sizes)} rows but the batch has {acts.shape[0]}")
        out, start = [], 0
        for edit, n in zip(self.edits, self.sizes):
            block = acts[start : start + n]
            if edit is None:
                out.append(block)
            else:
                sub = EditContext(
                    ctx.site,
                    ctx.mask[start : start + n],
                    ctx.abs_pos[start : start + n],
                    ctx.seq_len[start : start + n],
                    ctx.prompt_len[start : start + n],
                    ctx.step,
                )
                out.append(edit(block, sub))
            start += n
        return torch.cat(out, 0)


def steering_edit(
    vector: ConceptVector, strength: float, toward: Toward = "positive", *, scale: Scale = "mean_diff"
) -> Edit:
    """The edit with which ``vector``'s registered method steers toward one side, at ``strength``
    (``get_method(vector.method).edit(vector, strength, toward, scale=scale)``).

    For additive methods the pushed vector is the method's direction rescaled to the norm of the
    mean difference ``‖μ⁺ − μ⁻‖`` (``scale="mean_diff"``), so one strength means the same push
    length for every method: ``h ← h ± strength·‖r‖·d̂``. For the built-in methods:

    - ``logistic`` (GCAV): the target logit is ``±strength·‖w‖·‖r‖``, i.e. every selected token is moved
      (only if needed) until it lies ``strength·‖r‖`` past the probe's decision boundary along ``v``;
    - ``mean_diff``, ``pca_diff``: ``h ± strength·‖r‖·d̂``;
    - ``mean_centring``: toward positive ``μ⁺ − μ_all``, toward negative ``μ⁻ − μ_all`` (each rescaled);
    - ``ablation``: ``h − r̂ r̂ᵀ h ± strength·r``; ``ace``: ``h − r̂ r̂ᵀ (h − μ₀) ± strength·r``.
    """
    if not isinstance(vector, ConceptVector):
        raise TypeError(f"steering_edit needs a ConceptVector, got {type(vector).__name__}")
    return get_method(vector.method).edit(vector, strength, toward, scale=scale)


__all__ = ["ACEEdit", "AblateAndAdd", "GCAVEdit", "RowGroups", "gcav_epsilon", "steering_edit"]
