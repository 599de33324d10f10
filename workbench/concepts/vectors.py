"""Concept vectors: a direction at a site, how it was made, and the pure formulas behind it.

The methods themselves are registered objects (``method.py``, the six built-ins in ``methods.py``);
this module holds what they share: the pure direction formulas (activations in, tensors out; METHODS.md §1)

- ``mean_difference``: ``mean(h⁺) − mean(h⁻)`` (CAA, Rimsky et al. 2024; ActAdd, Turner et al. 2023);
- ``mean_centring``: ``mean(h_target) − mean(h_all_training)`` (Jorgensen et al. 2023);
- ``pca_of_differences``: first principal component of ``{h⁺ᵢ − h⁻ᵢ}`` (repeng), sign along the mean difference;

and ``ConceptVector``, which records the site, the method's name, its parameters and tensors, and is
saved through ``workbench.artifacts`` (kind ``"concept_vector"``): ``<stem>.safetensors`` + ``<stem>.json``.
``fit_vector(method, ...)`` looks the method up in the registry and fits it.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch
from jaxtyping import Float
from torch import Tensor

from ..artifacts import KIND_KEY, ArtifactError, load_tensors, read_json, save_tensors, tensor_paths
from ..sites import Site
from ..validation import check_str
from .method import method_class
from .probe import LogisticProbe, best_layer, fit_logistic, layer_sweep

KIND = "concept_vector"
# 2: written through workbench.artifacts (kind + schema_version). 1: the earlier files, marked
# "format": 1 and no kind; they still load.
SCHEMA_VERSION = 2
META_FIELDS = ("site", "hook_name", "method", "params", "bias", "concept", "d_model")


def check_pair(pos: Tensor, neg: Tensor, names: tuple[str, str] = ("positive", "negative")) -> None:
    """Both are finite ``[n, d]`` tensors with ``n >= 1`` and the same ``d``."""
    for name, x in zip(names, (pos, neg)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} activations must be a torch.Tensor [n, d], got {type(x).__name__}")
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"{name} activations must be [n, d] with n >= 1, got shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} activations hold NaN or Inf")
    if pos.shape[1] != neg.shape[1]:
        raise ValueError(f"{names[0]} activations have width {pos.shape[1]} but {names[1]} ones {neg.shape[1]}")


def mean_difference(pos: Float[Tensor, "n d"], neg: Float[Tensor, "m d"]) -> Float[Tensor, " d"]:
    """``mean(h⁺) − mean(h⁻)`` (CAA, Rimsky et al. 2024; ActAdd, Turner et al. 2023)."""
    check_pair(pos, neg)
    return pos.double().mean(0).float() - neg.double().mean(0).float()


def mean_centring(target: Float[Tensor, "n d"], all_training: Float[Tensor, "m d"]) -> Float[Tensor, " d"]:
    """``mean(h_target) − mean(h_all_training)`` (Jorgensen et al. 2023, "Improving activation
    steering in language models with mean-centring")."""
    check_pair(target, all_training, ("target", "all_training"))
    return target.double().mean(0).float() - all_training.double().mean(0).float()


def pca_of_differences(pos: Float[Tensor, "n d"], neg: Float[Tensor, "n d"]) -> tuple[Float[Tensor, " d"], float]:
    """First principal component of the paired differences ``{h⁺ᵢ − h⁻ᵢ}`` (repeng), as a unit
    vector with its sign chosen so that it points along the mean difference. The differences are
    centred before the SVD (as PCA does). Returns ``(v, explained_variance_ratio)``."""
    check_pair(pos, neg)
    if pos.shape[0] != neg.shape[0]:
        raise ValueError(
            f"PCA of differences needs paired activations, got {pos.shape[0]} positive and {neg.shape[0]} negative"
        )
    if pos.shape[0] < 2:
        raise ValueError("PCA of differences needs at least 2 pairs")
    diffs = (pos - neg).double()
    centred = diffs - diffs.mean(0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    v = vh[0]
    if float(v @ diffs.mean(0)) < 0:
        v = -v
    ratio = float(s[0] ** 2 / (s**2).sum()) if float((s**2).sum()) > 0 else 0.0
    return v.float(), ratio


@dataclass(frozen=True)
class ConceptVector:
    """A direction at a site, how it was made, and what its edits need.

    ``direction`` is the method's vector (unit ``v`` for ``logistic`` and ``pca_diff``; the raw
    difference for the others). ``method`` is a registered method's name. ``bias`` is the probe's
    ``b`` (logistic only) and ``params["w_norm"]`` its ``‖w‖``; ``extras`` holds further ``[d]``
    tensors (e.g. ACE's reference point ``mu0``, the means ``mu_pos``/``mu_neg``). ``params`` is
    JSON-serialisable."""

    site: Site
    direction: Tensor
    method: str
    params: dict = field(default_factory=dict)
    bias: Optional[float] = None
    extras: dict[str, Tensor] = field(default_factory=dict, compare=False)
    concept: str = ""

    def __post_init__(self) -> None:
        method_class(self.method)  # raises, listing the registered methods
        if not isinstance(self.site, Site):
            raise TypeError(f"site must be a Site, got {type(self.site).__name__}")
        d = torch.as_tensor(self.direction).detach().float()
        if d.ndim != 1 or not torch.isfinite(d).all() or float(d.norm()) == 0:
            raise ValueError(f"direction must be a finite non-zero 1-d vector, got shape {tuple(d.shape)}")
        object.__setattr__(self, "direction", d)
        extras = {}
        for k, v in dict(self.extras).items():
            v = torch.as_tensor(v).detach().float()
            if v.shape != d.shape or not torch.isfinite(v).all():
                raise ValueError(
                    f"extras[{k!r}] must be a finite vector of shape {tuple(d.shape)}, got {tuple(v.shape)}"
                )
            extras[check_str("extras key", k)] = v
        object.__setattr__(self, "extras", extras)
        if not isinstance(self.params, dict):
            raise TypeError(f"params must be a dict, got {type(self.params).__name__}")
        json.dumps(self.params, allow_nan=False)  # raises naming the bad value if not serialisable
        if self.bias is not None:
            if isinstance(self.bias, bool) or not isinstance(self.bias, (int, float)) or not math.isfinite(self.bias):
                raise ValueError(f"bias must be a finite number or None, got {self.bias!r}")
            object.__setattr__(self, "bias", float(self.bias))
        check_str("concept", self.concept, allow_empty=True)

    @property
    def unit(self) -> Tensor:
        return self.direction / self.direction.norm()

    @property
    def d_model(self) -> int:
        return self.direction.shape[0]

    def probe_logit(self, h: Tensor) -> Tensor:
        """``wᵀh + b`` of the logistic probe (vectors that carry one: a bias and ``params["w_norm"]``)."""
        if self.bias is None or "w_norm" not in self.params:
            raise ValueError(
                f"probe_logit needs a vector with a probe (bias and w_norm); this is a {self.method!r} one"
            )
        return self.params["w_norm"] * (h.double() @ self.unit.double()) + self.bias

    def check_model(self, model) -> "ConceptVector":
        """Raise unless the vector's site exists in ``model`` and its width is the model's ``d_model``."""
        self.site.check(model)
        if self.d_model != model.cfg.d_model:
            raise ValueError(
                f"this {self.method} vector has d_model {self.d_model} but the model has {model.cfg.d_model}"
            )
        return self

    def save(self, path: Union[str, Path]) -> Path:
        """Write ``<stem>.safetensors`` (tensors) and ``<stem>.json`` (everything else); returns the stem."""
        tensors = {"direction": self.direction}
        tensors.update({f"extra.{k}": v for k, v in self.extras.items()})
        meta = {
            "site": self.site.short,
            "hook_name": self.site.hook_name,
            "method": self.method,
            "params": self.params,
            "bias": self.bias,
            "concept": self.concept,
            "d_model": self.d_model,
        }
        return save_tensors(path, tensors, meta, kind=KIND, version=SCHEMA_VERSION)

    @classmethod
    def load(cls, path: Union[str, Path], *, model=None) -> "ConceptVector":
        """Read a vector saved by ``save`` (or by the earlier ``"format": 1`` code). Checks the kind and
        schema version, that the stored site and hook name agree, that every tensor is finite and has
        the stored ``d_model``, and (with ``model``) that the site exists in it and the widths match.
        Every error names the file and the field."""
        tensor_path, meta_path = tensor_paths(path)
        for p in (meta_path, tensor_path):
            if not p.is_file():
                raise FileNotFoundError(
                    f"ConceptVector file {p} is missing (a vector is saved as .json + .safetensors)"
                )
        doc = read_json(meta_path)
        if KIND_KEY not in doc and doc.get("format") == 1:
            tensors, meta = _load_format_1(meta_path, tensor_path, doc)
        else:
            tensors, meta = load_tensors(
                meta_path,
                kind=KIND,
                versions=(SCHEMA_VERSION,),
                required_tensors=("direction",),
                required_meta=META_FIELDS,
            )
        return _from_saved(cls, meta_path, tensor_path, tensors, meta, model)


def _load_format_1(meta_path: Path, tensor_path: Path, doc: dict) -> tuple[dict[str, Tensor], dict]:
    """The files written before ``workbench.artifacts``: same fields, ``"format": 1`` instead of a kind."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    missing = [f for f in META_FIELDS if f not in doc]
    if missing:
        raise ArtifactError(f"{meta_path}: missing field(s) {', '.join(map(repr, missing))}")
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtifactError(f"{tensor_path}: not a readable safetensors file ({err})") from None
    if "direction" not in tensors:
        raise ArtifactError(f"{tensor_path}: missing tensor 'direction'; found {sorted(tensors)}")
    for k, v in tensors.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise ArtifactError(f"{tensor_path}: tensor {k!r} holds NaN or Inf")
    return tensors, doc


def _from_saved(cls, meta_path: Path, tensor_path: Path, tensors: dict, meta: dict, model) -> ConceptVector:
    def bad(field_name: str, problem: str) -> ArtifactError:
        return ArtifactError(f"{meta_path}: field {field_name!r} {problem}")

    try:
        site = Site.parse(meta["site"])
    except (TypeError, ValueError, KeyError) as err:
        raise bad("site", f"is {meta['site']!r}, not a site ({err})") from None
    if meta["hook_name"] != site.hook_name:
        raise bad("hook_name", f"is {meta['hook_name']!r} but field 'site' {site.short!r} is hook {site.hook_name!r}")
    d_model = meta["d_model"]
    if isinstance(d_model, bool) or not isinstance(d_model, int) or d_model < 1:
        raise bad("d_model", f"must be a positive int, got {d_model!r}")
    for name, t in tensors.items():
        if tuple(t.shape) != (d_model,):
            raise ArtifactError(
                f"{tensor_path}: tensor {name!r} has shape {tuple(t.shape)}, "
                f"but {meta_path} field 'd_model' is {d_model}"
            )
    try:
        method_class(meta["method"])
    except ValueError as err:
        raise bad("method", str(err)) from None
    if not isinstance(meta["params"], dict):
        raise bad("params", f"must be an object, got {type(meta['params']).__name__}")
    bias = meta["bias"]
    if bias is not None and (isinstance(bias, bool) or not isinstance(bias, (int, float))):
        raise bad("bias", f"must be a number or null, got {bias!r}")
    if not isinstance(meta["concept"], str):
        raise bad("concept", f"must be a string, got {meta['concept']!r}")
    if model is not None:
        if d_model != model.cfg.d_model:
            raise bad("d_model", f"is {d_model} but the model has d_model {model.cfg.d_model}")
        try:
            site.check(model)
        except KeyError as err:
            raise bad("site", f"{site.short!r} does not exist in this model ({err})") from None
    extras = {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")}
    try:
        return cls(site, tensors["direction"], meta["method"], meta["params"], bias, extras, meta["concept"])
    except (TypeError, ValueError) as err:
        raise ArtifactError(f"{meta_path}: {err}") from None


def fit_vector(
    method: str,
    site: Site,
    pos: Float[Tensor, "n d"],
    neg: Float[Tensor, "m d"],
    *,
    all_training: Optional[Float[Tensor, "k d"]] = None,
    target: str = "positive",
    C: float = 1.0,
    ace_reference: str = "pooled",
    concept: str = "",
    extra_params: Optional[dict] = None,
) -> ConceptVector:
    """Fit one ``ConceptVector`` with the registered ``method`` from positive/negative activations at
    ``site`` (``get_method(method, ...).fit(...)``).

    The options go to the methods that have them: ``C`` to ``logistic``; ``target`` (the side) to
    ``mean_centring``, which also needs ``all_training`` (activations of the whole training
    distribution); ``ace_reference`` (``"pooled"``: the mean of μ⁺ and μ⁻, or ``"negative"``: μ⁻) to
    ``ace``. ``pca_diff`` needs paired rows."""
    cls = method_class(method)
    options: dict[str, Any] = {"C": C, "target": target, "reference": ace_reference}
    m = cls(**{k: v for k, v in options.items() if k in cls.option_names()})
    if not isinstance(site, Site):
        raise TypeError(f"site must be a Site, got {type(site).__name__} {site!r}")
    return m.fit(site, pos, neg, all_training=all_training, concept=concept, extra_params=extra_params)


__all__ = [
    "KIND",
    "SCHEMA_VERSION",
    "ConceptVector",
    "LogisticProbe",
    "best_layer",
    "check_pair",
    "fit_logistic",
    "fit_vector",
    "layer_sweep",
    "mean_centring",
    "mean_difference",
    "pca_of_differences",
]
