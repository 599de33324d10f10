"""Concept vectors: six ways to turn positive/negative activations into a direction.

Every function here is pure (activations in, tensors out); ``fit_vector`` wraps them into a
``ConceptVector`` that records the site, the method, its parameters and, for the logistic probe,
the bias. ``ConceptVector.save``/``load`` use safetensors + JSON (no pickles).

Methods (formulas as in METHODS.md §1):

- ``logistic`` — TCAV (Kim et al. 2018), SCAV (Xu et al. 2024), GCAV (Zhang et al. 2025): an
  L2-regularised logistic probe ``P(c|h) = σ(wᵀh + b)``; the direction is ``v = w/‖w‖``, with
  ``‖w‖`` and ``b`` kept for GCAV's closed-form edit.
- ``mean_diff`` — CAA (Rimsky et al. 2024) / ActAdd (Turner et al. 2023): ``v = mean(h⁺) − mean(h⁻)``.
- ``mean_centring`` — Jorgensen et al. 2023: ``v = mean(h_target) − mean(h_all_training)``.
- ``pca_diff`` — repeng: first principal component of ``{h⁺ᵢ − h⁻ᵢ}``, sign aligned with the mean difference.
- ``ablation`` — Arditi et al. 2024: ``r = mean(h⁺) − mean(h⁻)``; edits use ``r̂`` (remove) and ``r`` (induce).
- ``ace`` — Marshall et al. 2024: ``r = μ⁺ − μ⁻`` and a reference point ``μ₀`` (negative or pooled mean).
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from ..sites import Site

METHODS = ("logistic", "mean_diff", "mean_centring", "pca_diff", "ablation", "ace")


def _check_pair(pos: Tensor, neg: Tensor) -> None:
    for name, x in (("positive", pos), ("negative", neg)):
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"{name} activations must be [n, d] with n >= 1, got shape {tuple(x.shape)}")
    if pos.shape[1] != neg.shape[1]:
        raise ValueError(f"positive activations have width {pos.shape[1]} but negative ones {neg.shape[1]}")


# ----------------------------------------------------------------------------- pure methods
def mean_difference(pos: Float[Tensor, "n d"], neg: Float[Tensor, "m d"]) -> Float[Tensor, " d"]:
    """``mean(h⁺) − mean(h⁻)`` (CAA, Rimsky et al. 2024; ActAdd, Turner et al. 2023)."""
    _check_pair(pos, neg)
    return pos.double().mean(0).float() - neg.double().mean(0).float()


def mean_centring(target: Float[Tensor, "n d"], all_training: Float[Tensor, "m d"]) -> Float[Tensor, " d"]:
    """``mean(h_target) − mean(h_all_training)`` (Jorgensen et al. 2023, "Improving activation
    steering in language models with mean-centring")."""
    _check_pair(target, all_training)
    return target.double().mean(0).float() - all_training.double().mean(0).float()


def pca_of_differences(pos: Float[Tensor, "n d"], neg: Float[Tensor, "n d"]) -> tuple[Float[Tensor, " d"], float]:
    """First principal component of the paired differences ``{h⁺ᵢ − h⁻ᵢ}`` (repeng), as a unit
    vector with its sign chosen so that it points along the mean difference. The differences are
    centred before the SVD (as PCA does). Returns ``(v, explained_variance_ratio)``."""
    _check_pair(pos, neg)
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
class LogisticProbe:
    """``P(c|h) = σ(wᵀh + b)``; ``C`` is scikit-learn's inverse regularisation strength."""

    w: Tensor
    b: float
    C: float
    n_iter: int

    def logits(self, h: Float[Tensor, "... d"]) -> Float[Tensor, "..."]:
        return h.double() @ self.w.double() + self.b

    def predict_proba(self, h: Float[Tensor, "... d"]) -> Float[Tensor, "..."]:
        return torch.sigmoid(self.logits(h))

    def accuracy(self, h: Tensor, labels: Tensor) -> float:
        return float(((self.logits(h) > 0).long() == torch.as_tensor(labels).long()).double().mean())


def fit_logistic(
    x: Float[Tensor, "n d"], y: Sequence[int], *, C: float = 1.0, max_iter: int = 500, tol: float = 1e-8
) -> LogisticProbe:
    """L2-regularised logistic regression, the same objective as scikit-learn's
    ``LogisticRegression(C=C)`` (lbfgs): minimise ``C · Σᵢ BCE(σ(wᵀxᵢ + b), yᵢ) + ½‖w‖²`` (the intercept
    is not penalised). Solved in float64 with L-BFGS (strong Wolfe line search); features are scaled
    by one global constant internally for conditioning, which leaves the optimum unchanged after
    rescaling back. Used for TCAV/SCAV/GCAV probes (Kim et al. 2018; Xu et al. 2024; Zhang et al. 2025)."""
    x = torch.as_tensor(x).double()
    y_t = torch.as_tensor(list(y) if not isinstance(y, Tensor) else y).double()
    if x.ndim != 2 or x.shape[0] != y_t.shape[0]:
        raise ValueError(
            f"fit_logistic needs x [n, d] and y [n] with the same n, got {tuple(x.shape)} and {tuple(y_t.shape)}"
        )
    if not set(y_t.unique().tolist()) <= {0.0, 1.0} or y_t.unique().numel() != 2:
        raise ValueError("fit_logistic needs labels 0 and 1, both present")
    if C <= 0:
        raise ValueError(f"C must be > 0, got {C}")
    # Scale features by s: w_s = s·w keeps w·x, and the penalty ½‖w‖² = ½‖w_s‖²/s².
    s = float(x.abs().mean().clamp_min(1e-12))
    xs = x / s
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tol,
        tolerance_change=1e-14,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    n = x.shape[0]

    def closure():
        opt.zero_grad()
        z = xs @ w + b
        # objective divided by C·n for conditioning: mean BCE + ‖w‖²/(2 C n s²)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y_t) + (w @ w) / (2 * C * n * s * s)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    state = opt.state[opt._params[0]]
    return LogisticProbe(w.detach() / s, float(b.detach()), C, int(state.get("n_iter", 0)))


# ----------------------------------------------------------------------------- ConceptVector
@dataclass(frozen=True)
class ConceptVector:
    """A direction at a site, how it was made, and what its edits need.

    ``direction`` is the method's vector (unit ``v`` for ``logistic`` and ``pca_diff``; the raw
    difference for the others). ``bias`` is the probe's ``b`` (logistic only) and
    ``params["w_norm"]`` its ``‖w‖``; ``extras`` holds further tensors (e.g. ACE's reference point
    ``mu0``, the means ``mu_pos``/``mu_neg``). ``params`` is JSON-serialisable."""

    site: Site
    direction: Tensor
    method: str
    params: dict = field(default_factory=dict)
    bias: Optional[float] = None
    extras: dict[str, Tensor] = field(default_factory=dict, compare=False)
    concept: str = ""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; use one of {METHODS}")
        if not isinstance(self.site, Site):
            raise TypeError(f"site must be a Site, got {type(self.site).__name__}")
        d = torch.as_tensor(self.direction).detach().float()
        if d.ndim != 1 or not torch.isfinite(d).all() or float(d.norm()) == 0:
            raise ValueError(f"direction must be a finite non-zero 1-d vector, got shape {tuple(d.shape)}")
        object.__setattr__(self, "direction", d)
        json.dumps(self.params)  # raises TypeError naming the bad value if not serialisable

    @property
    def unit(self) -> Tensor:
        return self.direction / self.direction.norm()

    @property
    def d_model(self) -> int:
        return self.direction.shape[0]

    def probe_logit(self, h: Tensor) -> Tensor:
        """``wᵀh + b`` of the logistic probe (logistic vectors only)."""
        if self.method != "logistic":
            raise ValueError(f"probe_logit needs a logistic ConceptVector, this one is {self.method!r}")
        return self.params["w_norm"] * (h.double() @ self.unit.double()) + self.bias

    def save(self, path: Union[str, Path]) -> Path:
        """Write ``path.safetensors`` (tensors) and ``path.json`` (everything else); returns the stem."""
        from safetensors.torch import save_file

        stem = Path(path)
        stem = stem.with_suffix("") if stem.suffix in (".json", ".safetensors") else stem
        stem.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"direction": self.direction.contiguous()}
        tensors.update({f"extra.{k}": v.detach().float().contiguous() for k, v in self.extras.items()})
        save_file(tensors, str(stem) + ".safetensors")
        meta = {
            "site": self.site.short,
            "hook_name": self.site.hook_name,
            "method": self.method,
            "params": self.params,
            "bias": self.bias,
            "concept": self.concept,
            "d_model": self.d_model,
            "format": 1,
        }
        Path(str(stem) + ".json").write_text(json.dumps(meta, indent=2))
        return stem

    @classmethod
    def load(cls, path: Union[str, Path]) -> "ConceptVector":
        from safetensors.torch import load_file

        stem = Path(path)
        stem = stem.with_suffix("") if stem.suffix in (".json", ".safetensors") else stem
        meta_path, tensor_path = Path(str(stem) + ".json"), Path(str(stem) + ".safetensors")
        for p in (meta_path, tensor_path):
            if not p.exists():
                raise FileNotFoundError(
                    f"ConceptVector file {p} is missing (a vector is saved as .json + .safetensors)"
                )
        meta = json.loads(meta_path.read_text())
        tensors = load_file(str(tensor_path))
        extras = {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")}
        return cls(
            Site.parse(meta["site"]),
            tensors["direction"],
            meta["method"],
            meta["params"],
            meta["bias"],
            extras,
            meta.get("concept", ""),
        )


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
    """Fit one ``ConceptVector`` with ``method`` from positive/negative activations at ``site``.

    ``mean_centring`` needs ``all_training`` (activations of the whole training distribution) and a
    ``target`` side; ``pca_diff`` needs paired rows; ``ace_reference`` is ``"pooled"`` (mean of μ⁺ and μ⁻)
    or ``"negative"`` (μ⁻)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    _check_pair(pos, neg)
    params = dict(extra_params or {}, n_pos=int(pos.shape[0]), n_neg=int(neg.shape[0]))
    mu_pos, mu_neg = pos.double().mean(0).float(), neg.double().mean(0).float()
    r = mu_pos - mu_neg
    params["mean_diff_norm"] = float(r.norm())
    extras = {"mu_pos": mu_pos, "mu_neg": mu_neg}
    bias = None
    if method == "logistic":
        probe = fit_logistic(torch.cat([pos, neg]), [1] * len(pos) + [0] * len(neg), C=C)
        w_norm = float(probe.w.norm())
        direction = (probe.w / w_norm).float()
        bias = probe.b
        params.update(
            C=C,
            w_norm=w_norm,
            train_accuracy=probe.accuracy(torch.cat([pos, neg]), torch.tensor([1] * len(pos) + [0] * len(neg))),
        )
    elif method in ("mean_diff", "ablation"):
        direction = r
    elif method == "mean_centring":
        if all_training is None:
            raise ValueError("mean_centring needs all_training: activations of the whole training distribution")
        if target not in ("positive", "negative"):
            raise ValueError(f"target must be 'positive' or 'negative', got {target!r}")
        mu_all = all_training.double().mean(0).float()
        direction = (mu_pos if target == "positive" else mu_neg) - mu_all
        extras["mu_all"] = mu_all
        extras["toward_positive"] = mu_pos - mu_all
        extras["toward_negative"] = mu_neg - mu_all
        params.update(target=target, n_all=int(all_training.shape[0]))
    elif method == "pca_diff":
        direction, ratio = pca_of_differences(pos, neg)
        params["explained_variance_ratio"] = ratio
    else:  # ace
        if ace_reference not in ("pooled", "negative"):
            raise ValueError(f"ace_reference must be 'pooled' or 'negative', got {ace_reference!r}")
        direction = r
        extras["mu0"] = (mu_pos + mu_neg) / 2 if ace_reference == "pooled" else mu_neg
        params["reference"] = ace_reference
    return ConceptVector(site, direction, method, params, bias, extras, concept)


# ----------------------------------------------------------------------------- layer sweep
def layer_sweep(
    train: dict[str, tuple[Tensor, Tensor]],
    test: dict[str, tuple[Tensor, Tensor]],
    *,
    C: float = 1.0,
    concept: str = "",
):
    """Fit a logistic probe per site on ``train[site] = (pos, neg)`` and score held-out accuracy on
    ``test[site]`` (SCAV-style layer selection, Xu et al. 2024). Returns a DataFrame with columns
    concept, site, layer, train_accuracy, test_accuracy, w_norm."""
    import pandas as pd

    rows = []
    for key, (pos, neg) in train.items():
        tp, tn = test[key]
        probe = fit_logistic(torch.cat([pos, neg]), [1] * len(pos) + [0] * len(neg), C=C)
        site = Site.parse(key)
        rows.append(
            {
                "concept": concept,
                "site": key,
                "layer": site.layer,
                "train_accuracy": probe.accuracy(torch.cat([pos, neg]), torch.tensor([1] * len(pos) + [0] * len(neg))),
                "test_accuracy": probe.accuracy(torch.cat([tp, tn]), torch.tensor([1] * len(tp) + [0] * len(tn))),
                "w_norm": float(probe.w.norm()),
            }
        )
    return pd.DataFrame(rows)


def best_layer(sweep, *, prefer: str = "first") -> str:
    """The site with the highest held-out accuracy (ties: the earliest layer, or ``prefer="last"``)."""
    if len(sweep) == 0:
        raise ValueError("the layer sweep is empty")
    top = sweep["test_accuracy"].max()
    cands = sweep[np.isclose(sweep["test_accuracy"], top)].sort_values("layer")
    return str(cands.iloc[0 if prefer == "first" else -1]["site"])
