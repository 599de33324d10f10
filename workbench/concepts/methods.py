"""The six built-in concept methods, one registered class each (formulas as in METHODS.md §1).

Every ``fit`` records the same base facts in the vector — ``params`` ``n_pos``, ``n_neg`` and
``mean_diff_norm = ‖μ⁺ − μ⁻‖`` (the unit of every steering strength), ``extras`` ``mu_pos`` and
``mu_neg`` — plus its own:

- ``logistic`` — TCAV (Kim et al. 2018), SCAV (Xu et al. 2024), GCAV (Zhang et al. 2025): an
  L2-regularised logistic probe ``P(c|h) = σ(wᵀh + b)``; the direction is ``v = w/‖w‖``, with ``‖w‖``
  and ``b`` kept for GCAV's closed-form edit, which moves each token to ``±strength·‖r‖`` past the boundary.
- ``mean_diff`` — CAA (Rimsky et al. 2024) / ActAdd (Turner et al. 2023): ``v = μ⁺ − μ⁻``; edit ``h ± s·‖r‖·v̂``.
- ``mean_centring`` — Jorgensen et al. 2023: ``v = mean(h_target) − mean(h_all_training)``; the edit adds
  ``μ⁺ − μ_all`` (toward positive) or ``μ⁻ − μ_all`` (toward negative), rescaled to ``s·‖r‖``.
- ``pca_diff`` — repeng: first principal component of ``{h⁺ᵢ − h⁻ᵢ}``, sign along the mean difference;
  edit as ``mean_diff``.
- ``ablation`` — Arditi et al. 2024: ``r = μ⁺ − μ⁻``; edit ``h − r̂ r̂ᵀ h ± s·r`` (``AblateAndAdd``).
- ``ace`` — Marshall et al. 2024: ``r = μ⁺ − μ⁻`` and a reference point ``μ₀`` (pooled or negative mean);
  edit ``h − r̂ r̂ᵀ (h − μ₀) ± s·r`` (``ACEEdit``).

``METHODS`` names these six in the order the bake-off compares them; ``method_names()`` also lists
methods registered later.
"""

from dataclasses import dataclass
from typing import ClassVar, Optional

from torch import Tensor

from ..edits import AddVector, Edit
from ..validation import check_choice, check_float
from .method import ConceptMethod, Scale, Toward, method_names, push_length, register_method
from .probe import fit_logistic, labels_for
from .steering import AblateAndAdd, ACEEdit, GCAVEdit
from .vectors import ConceptVector, check_pair, mean_difference, pca_of_differences


def _contrast(pos: Tensor, neg: Tensor, extra_params: Optional[dict]) -> tuple[dict, dict[str, Tensor]]:
    """The params and extras every method records: counts, ``‖μ⁺ − μ⁻‖``, and the two means."""
    check_pair(pos, neg)
    if extra_params is not None and not isinstance(extra_params, dict):
        raise TypeError(f"extra_params must be a dict or None, got {type(extra_params).__name__}")
    params = dict(extra_params or {}, n_pos=int(pos.shape[0]), n_neg=int(neg.shape[0]))
    mu_pos, mu_neg = pos.double().mean(0).float(), neg.double().mean(0).float()
    params["mean_diff_norm"] = float((mu_pos - mu_neg).norm())
    return params, {"mu_pos": mu_pos, "mu_neg": mu_neg}


def _sign(toward: Toward) -> float:
    return 1.0 if toward == "positive" else -1.0


@register_method
@dataclass(frozen=True)
class LogisticCAV(ConceptMethod):
    """Logistic probe direction (TCAV/SCAV) steered with GCAV's closed form."""

    name: ClassVar[str] = "logistic"
    label: ClassVar[str] = "Logistic CAV + GCAV"
    C: float = 1.0  # scikit-learn's inverse L2 strength of the probe

    def __post_init__(self) -> None:
        check_float("LogisticCAV.C", self.C, min=0.0, min_open=True)

    def fit(self, site, pos, neg, *, all_training=None, concept="", extra_params=None) -> ConceptVector:
        params, extras = _contrast(pos, neg, extra_params)
        x, y = labels_for(pos, neg)
        probe = fit_logistic(x, y, C=self.C)
        w_norm = float(probe.w.norm())
        params.update(C=self.C, w_norm=w_norm, train_accuracy=probe.accuracy(x, y))
        return ConceptVector(site, (probe.w / w_norm).float(), self.name, params, probe.b, extras, concept)

    def _edit(self, vector: ConceptVector, strength: float, toward: Toward, scale: Scale) -> Edit:
        if strength <= 0:
            raise ValueError(f"GCAV strength must be > 0 (target logit = strength·‖w‖·‖r‖), got {strength}")
        z = strength * vector.params["w_norm"] * push_length(vector)
        mode = "add" if toward == "positive" else "remove"
        return GCAVEdit.from_vector(vector, None, mode, target_logit=_sign(toward) * z)


@dataclass(frozen=True)
class _AlongDirection(ConceptMethod):
    """Edit shared by methods whose vector is pushed along as is: ``h ± strength·‖r‖·d̂``."""

    def _edit(self, vector: ConceptVector, strength: float, toward: Toward, scale: Scale) -> Edit:
        d = vector.unit * push_length(vector) if scale == "mean_diff" else vector.direction
        return AddVector(d, _sign(toward) * strength)


@register_method
@dataclass(frozen=True)
class MeanDifference(_AlongDirection):
    """``v = μ⁺ − μ⁻`` (CAA / ActAdd)."""

    name: ClassVar[str] = "mean_diff"
    label: ClassVar[str] = "Mean difference (CAA)"

    def fit(self, site, pos, neg, *, all_training=None, concept="", extra_params=None) -> ConceptVector:
        params, extras = _contrast(pos, neg, extra_params)
        return ConceptVector(site, mean_difference(pos, neg), self.name, params, None, extras, concept)


@register_method
@dataclass(frozen=True)
class MeanCentring(ConceptMethod):
    """``v = mean(h_target) − mean(h_all_training)`` (Jorgensen et al. 2023); both sides are kept, so
    the vector steers either way."""

    name: ClassVar[str] = "mean_centring"
    label: ClassVar[str] = "Mean-centring"
    needs_all_training: ClassVar[bool] = True
    target: str = "positive"  # the side whose mean is the stored direction

    def __post_init__(self) -> None:
        check_choice("MeanCentring.target", self.target, ("positive", "negative"))

    def fit(self, site, pos, neg, *, all_training=None, concept="", extra_params=None) -> ConceptVector:
        params, extras = _contrast(pos, neg, extra_params)
        if all_training is None:
            raise ValueError("mean_centring needs all_training: activations of the whole training distribution")
        check_pair(pos, all_training, ("positive", "all_training"))
        mu_all = all_training.double().mean(0).float()
        extras["mu_all"] = mu_all
        extras["toward_positive"] = extras["mu_pos"] - mu_all
        extras["toward_negative"] = extras["mu_neg"] - mu_all
        params.update(target=self.target, n_all=int(all_training.shape[0]))
        direction = extras[f"toward_{self.target}"]
        return ConceptVector(site, direction, self.name, params, None, extras, concept)

    def _edit(self, vector: ConceptVector, strength: float, toward: Toward, scale: Scale) -> Edit:
        key = f"toward_{toward}"
        if key not in vector.extras:
            raise ValueError(f"this mean_centring vector lacks extras[{key!r}]; refit it with fit_vector")
        d = vector.extras[key]
        if scale == "mean_diff":
            d = d / d.norm() * push_length(vector)
        return AddVector(d, strength)


@register_method
@dataclass(frozen=True)
class PCAOfDifferences(_AlongDirection):
    """First principal component of the paired differences (repeng); needs paired rows."""

    name: ClassVar[str] = "pca_diff"
    label: ClassVar[str] = "PCA of differences"

    def fit(self, site, pos, neg, *, all_training=None, concept="", extra_params=None) -> ConceptVector:
        params, extras = _contrast(pos, neg, extra_params)
        direction, ratio = pca_of_differences(pos, neg)
        params["explained_variance_ratio"] = ratio
        return ConceptVector(site, direction, self.name, params, None, extras, concept)


@register_method
@dataclass(frozen=True)
class DirectionalAblation(MeanDifference):
    """The mean-difference vector ``r = μ⁺ − μ⁻``, used differently: the edit removes the component
    along ``r̂`` and induces ``±strength·r`` (Arditi et al. 2024)."""

    name: ClassVar[str] = "ablation"
    label: ClassVar[str] = "Ablate + add (Arditi)"

    def _edit(self, vector: ConceptVector, strength: float, toward: Toward, scale: Scale) -> Edit:
        return AblateAndAdd(vector.direction, _sign(toward) * strength)


@register_method
@dataclass(frozen=True)
class ACE(ConceptMethod):
    """Affine concept editing (Marshall et al. 2024): ``r = μ⁺ − μ⁻`` and a reference point ``μ₀``."""

    name: ClassVar[str] = "ace"
    label: ClassVar[str] = "ACE (affine)"
    reference: str = "pooled"  # μ₀: "pooled" = (μ⁺ + μ⁻)/2, "negative" = μ⁻

    def __post_init__(self) -> None:
        check_choice("ACE.reference", self.reference, ("pooled", "negative"))

    def fit(self, site, pos, neg, *, all_training=None, concept="", extra_params=None) -> ConceptVector:
        params, extras = _contrast(pos, neg, extra_params)
        mu_pos, mu_neg = extras["mu_pos"], extras["mu_neg"]
        extras["mu0"] = (mu_pos + mu_neg) / 2 if self.reference == "pooled" else mu_neg
        params["reference"] = self.reference
        return ConceptVector(site, mean_difference(pos, neg), self.name, params, None, extras, concept)

    def _edit(self, vector: ConceptVector, strength: float, toward: Toward, scale: Scale) -> Edit:
        return ACEEdit.from_vector(vector, _sign(toward) * strength)


METHODS: tuple[str, ...] = method_names()

__all__ = [
    "ACE",
    "METHODS",
    "DirectionalAblation",
    "LogisticCAV",
    "MeanCentring",
    "MeanDifference",
    "PCAOfDifferences",
]
