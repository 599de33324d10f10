"""The logistic concept probe and the layer sweep that uses it.

``fit_logistic`` solves scikit-learn's L2-regularised logistic regression in float64 (the probe of
TCAV, Kim et al. 2018; SCAV, Xu et al. 2024; GCAV, Zhang et al. 2025); ``layer_sweep`` fits one probe
per site and scores held-out accuracy (SCAV-style layer selection), ``best_layer`` reads off the site.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..sites import Site
from ..validation import check_choice


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
    x: Float[Tensor, "n d"],
    y: Union[Sequence[int], Int[Tensor, " n"]],
    *,
    C: float = 1.0,
    max_iter: int = 500,
    tol: float = 1e-8,
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


def labels_for(pos: Tensor, neg: Tensor) -> tuple[Tensor, Tensor]:
    """``(x, y)``: the rows of ``pos`` then ``neg``, labelled 1 and 0."""
    return torch.cat([pos, neg]), torch.tensor([1] * len(pos) + [0] * len(neg))


def layer_sweep(
    train: dict[str, tuple[Tensor, Tensor]],
    test: dict[str, tuple[Tensor, Tensor]],
    *,
    C: float = 1.0,
    concept: str = "",
) -> pd.DataFrame:
    """Fit a logistic probe per site on ``train[site] = (pos, neg)`` and score held-out accuracy on
    ``test[site]`` (SCAV-style layer selection, Xu et al. 2024). Returns a DataFrame with columns
    concept, site, layer, train_accuracy, test_accuracy, w_norm."""
    missing = sorted(set(train) - set(test))
    if missing:
        raise KeyError(f"layer_sweep: no held-out activations for site(s) {missing}; test has {sorted(test)}")
    rows = []
    for key, (pos, neg) in train.items():
        x, y = labels_for(pos, neg)
        probe = fit_logistic(x, y, C=C)
        site = Site.parse(key)
        rows.append(
            {
                "concept": concept,
                "site": key,
                "layer": site.layer,
                "train_accuracy": probe.accuracy(x, y),
                "test_accuracy": probe.accuracy(*labels_for(*test[key])),
                "w_norm": float(probe.w.norm()),
            }
        )
    return pd.DataFrame(rows)


def best_layer(sweep: pd.DataFrame, *, prefer: str = "first") -> str:
    """The site with the highest held-out accuracy (ties: the earliest layer, or ``prefer="last"``)."""
    check_choice("prefer", prefer, ("first", "last"))
    if len(sweep) == 0:
        raise ValueError("the layer sweep is empty")
    top = sweep["test_accuracy"].max()
    cands = sweep[np.isclose(sweep["test_accuracy"], top)].sort_values("layer")
    return str(cands.iloc[0 if prefer == "first" else -1]["site"])


__all__ = ["LogisticProbe", "best_layer", "fit_logistic", "labels_for", "layer_sweep"]
