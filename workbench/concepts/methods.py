"""The seven built-in concept methods, one registered class each (formulas as in METHODS.md §1 and §6).

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

- ``linear_act`` — Rodriguez et al. 2025: per-unit affine 1-D optimal transport from one side's
  activations to the other's; edit ``h ← h + λ((ω − 1) ⊙ h + β)``, ``λ ∈ [0, 1]`` (``TransportEdit``),
  at one site or, causally estimated, at several (``fit_sites``).

``METHODS`` names these seven in the order the bake-off compares them; ``method_names()`` also lists
methods registered later.
"""

from dataclasses import dataclass
from typing import ClassVar, Optional

from torch import Tensor

from ..edits import AddVector, Edit
from ..sites import Site
from ..validation import check_bool, check_choice, check_float, check_int
from .extract import extract
from .method import ConceptMethod, Scale, Toward, method_names, push_length, register_method
from .probe import fit_logistic, labels_for
from .steering import AblateAndAdd, ACEEdit, GCAVEdit
from .transport import TransportEdit, fit_affine_transport
from .transport import support as transport_support
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


@register_method
@dataclass(frozen=True)
class LinearAcT(ConceptMethod):
    """Linear-AcT (Rodriguez et al. 2025): per-unit affine 1-D optimal transport between the two sides'
    activation distributions (``transport.py``), applied with strength ``λ ∈ [0, 1]``. Both directions
    are fitted: toward positive maps the negative sample onto the positive one (``omega_positive``,
    ``beta_positive``), toward negative the reverse. ``direction`` is ``μ⁺ − μ⁻`` (for comparisons).
    At several sites (``fit_sites``) the maps are estimated causally, each layer on source
    activations already moved by the earlier layers' maps at ``λ = 1``."""

    name: ClassVar[str] = "linear_act"
    label: ClassVar[str] = "Linear-AcT (transport)"
    default_grid: ClassVar[Optional[tuple[float, ...]]] = (0.5, 0.75, 1.0)
    strength_unit: ClassVar[str] = "λ"
    n_quantiles: Optional[int] = None  # quantile levels matched (None: the larger sample's size)
    use_support: bool = True  # transport only inside the source sample's per-unit range
    causal: bool = True  # fit_sites: estimate each layer after the earlier layers' maps
    # fit_sites reads every token ("tokens", after the first) or one mean per text ("mean"): the map acts
    # on each token, so it is estimated on the distribution of token activations
    pooling: str = "tokens"

    def __post_init__(self) -> None:
        if self.n_quantiles is not None:
            check_int("LinearAcT.n_quantiles", self.n_quantiles, min=2)
        check_bool("LinearAcT.use_support", self.use_support)
        check_bool("LinearAcT.causal", self.causal)
        check_choice("LinearAcT.pooling", self.pooling, ("tokens", "mean"))

    def fit(self, site, pos, neg, *, all_training=None, concept="", extra_params=None) -> ConceptVector:
        return self._fit_maps(site, pos, neg, neg, pos, concept=concept, extra_params=extra_params)

    def _fit_maps(
        self, site, pos, neg, source_to_pos, source_to_neg, *, concept="", extra_params=None
    ) -> ConceptVector:
        """Maps ``source_to_pos → pos`` and ``source_to_neg → neg`` (the sources are ``neg`` and
        ``pos`` themselves, or those activations after the earlier layers' maps)."""
        params, extras = _contrast(pos, neg, extra_params)
        for toward, src, tgt in (("positive", source_to_pos, pos), ("negative", source_to_neg, neg)):
            check_pair(src, tgt, (f"source toward {toward}", f"target {toward}"))
            omega, beta = fit_affine_transport(src, tgt, self.n_quantiles)
            low, high = transport_support(src)
            extras.update({f"omega_{toward}": omega.float(), f"beta_{toward}": beta.float()})
            extras.update({f"low_{toward}": low, f"high_{toward}": high})
            params[f"mean_omega_{toward}"] = float(omega.mean())
        params.update(n_quantiles=self.n_quantiles, use_support=self.use_support)
        return ConceptVector(site, mean_difference(pos, neg), self.name, params, None, extras, concept)

    def fit_sites(
        self,
        model,
        sites,
        positive,
        negative,
        *,
        reduce="mean",
        all_training=None,
        positions="all",
        concept="",
        extra_params=None,
        progress=False,
    ) -> tuple[ConceptVector, ...]:
        """Linear-AcT's maps at every site (``reduce`` is replaced by the method's ``pooling``), each
        estimated after the earlier sites' maps when ``causal``."""
        sites = tuple(sorted(sites, key=lambda s: (s.layer if s.layer is not None else -1, s.short)))
        if not sites or not all(isinstance(s, Site) for s in sites):
            raise TypeError(f"fit_sites needs a non-empty sequence of Sites, got {sites!r}")
        pooling = self.pooling
        pos_read = extract(model, list(positive), sites, pooling, progress=progress)
        neg_read = extract(model, list(negative), sites, pooling, progress=progress)
        params = dict(extra_params or {}, causal=self.causal, pooling=pooling, stack=[s.short for s in sites])
        vectors: list[ConceptVector] = []
        for s in sites:
            pos, neg = pos_read[s.short], neg_read[s.short]
            sources = {"positive": neg, "negative": pos}
            if vectors and self.causal:  # the source side as the earlier layers' full transport (λ = 1) leaves it
                for toward, texts in (("positive", negative), ("negative", positive)):
                    steers = {v.site: self.edit(v, 1.0, toward) for v in vectors}
                    moved = extract(model, list(texts), s, pooling, steers=steers, steer_positions=positions)
                    sources[toward] = moved[s.short]
            vectors.append(
                self._fit_maps(
                    s, pos, neg, sources["positive"], sources["negative"], concept=concept, extra_params=params
                )
            )
        return tuple(vectors)

    def _edit(self, vector: ConceptVector, strength: float, toward: Toward, scale: Scale) -> Edit:
        keys = [f"{k}_{toward}" for k in ("omega", "beta", "low", "high")]
        missing = [k for k in keys if k not in vector.extras]
        if missing:
            raise ValueError(f"this linear_act vector lacks extras {missing}; refit it with fit_vector")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(
                f"Linear-AcT strength λ must lie in [0, 1] (an interpolation to the transport), got {strength}"
            )
        omega, beta, low, high = (vector.extras[k] for k in keys)
        if not vector.params.get("use_support", True):
            low = high = None
        return TransportEdit(omega, beta, strength, low, high)


METHODS: tuple[str, ...] = method_names()

__all__ = [
    "ACE",
    "METHODS",
    "DirectionalAblation",
    "LinearAcT",
    "LogisticCAV",
    "MeanCentring",
    "MeanDifference",
    "PCAOfDifferences",
]
