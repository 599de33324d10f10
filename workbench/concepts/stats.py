"""Uncertainty for steering results: the percentile bootstrap over evaluation units (prompts).

``bootstrap_ci(statistic, *arrays)`` resamples the *units* — rows along axis 0 of every array, the
same rows for all arrays (a paired resample) — with replacement ``n_boot`` times and reports the
statistic on the full sample with the ``(1 − level)/2`` and ``(1 + level)/2`` percentiles of its
resampled values (Efron & Tibshirani 1993, ch. 13; METHODS.md §6: ``B ≥ 1000``, 2.5/97.5 percentiles).

A unit carries everything measured on it: for a steering condition, one prompt's hits, token counts,
summed NLL and KL, pooled over its sampling seeds, so the interval is a *cluster* bootstrap over
prompts (seeds and random draws stay nested inside their prompt). Ratio statistics (a perplexity is
``exp(Σ nll / Σ tokens)``) are computed on the resampled sums, never averaged per unit.

Resamples depend only on ``(n_units, n_boot, seed)``: two calls with the same three draw the same
prompt indices, so intervals of different conditions evaluated on the same prompts are paired, and a
difference between two conditions can be bootstrapped by passing both conditions' arrays to one call.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..validation import check_bool, check_float, check_int

N_BOOT = 2000  # resamples by default (METHODS.md §6 asks for at least 1000)
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile-bootstrap interval ``[low, high]`` at ``level``."""

    estimate: float
    low: float
    high: float
    level: float = LEVEL
    n_boot: int = N_BOOT
    n_units: int = 0

    def overlaps(self, other: "Interval") -> bool:
        """True when the two intervals share a point (NaN bounds count as overlapping)."""
        if not all(np.isfinite([self.low, self.high, other.low, other.high])):
            return True
        return self.low <= other.high and other.low <= self.high

    def __str__(self) -> str:
        return f"{self.estimate:.3g} [{self.low:.3g}, {self.high:.3g}]"


def resample_indices(n_units: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """``[n_boot, n_units]`` unit indices drawn uniformly with replacement (numpy's PCG64 seeded with
    ``seed``). The same arguments always give the same matrix."""
    check_int("n_units", n_units, min=1)
    check_int("n_boot", n_boot, min=1)
    check_int("seed", seed, min=0)
    return np.random.default_rng(seed).integers(0, n_units, size=(n_boot, n_units))


def _as_units(arrays: tuple) -> list[np.ndarray]:
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array of per-unit values")
    out = []
    for i, a in enumerate(arrays):
        x = np.asarray(a, dtype=float)
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(f"array {i} must have at least one unit along axis 0, got shape {x.shape}")
        out.append(x)
    n = {x.shape[0] for x in out}
    if len(n) != 1:
        raise ValueError(f"every array must hold the same units along axis 0, got lengths {sorted(n)}")
    return out


def bootstrap_distribution(
    statistic: Callable[..., np.ndarray],
    *arrays,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[float, np.ndarray]:
    """``(statistic on the full sample, its n_boot resampled values)``.

    ``statistic(*resampled)`` is *vectorised*: each array arrives with a leading resample axis,
    ``[n_boot, n_units, ...]``, and the statistic reduces the unit axis (axis 1) to one value per
    resample, ``[n_boot]``. The full-sample value is the statistic on ``[1, n_units, ...]``."""
    if not callable(statistic):
        raise TypeError(f"statistic must be callable, got {type(statistic).__name__}")
    xs = _as_units(arrays)
    idx = resample_indices(xs[0].shape[0], n_boot, seed)
    full = np.asarray(statistic(*(x[None] for x in xs)), dtype=float).reshape(-1)
    if full.shape != (1,):
        raise ValueError(f"statistic must reduce [1, n_units, ...] to one value, got shape {full.shape}")
    boots = np.asarray(statistic(*(x[idx] for x in xs)), dtype=float).reshape(-1)
    if boots.shape != (n_boot,):
        raise ValueError(f"statistic must reduce [n_boot, n_units, ...] to [n_boot], got shape {boots.shape}")
    return float(full[0]), boots


def percentile_interval(boots: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The ``(1 − level)/2`` and ``(1 + level)/2`` percentiles of the resampled values (NaN resamples,
    e.g. a ratio whose denominator was resampled to 0, are left out; all NaN gives NaN)."""
    check_float("level", level, min=0.0, max=1.0, min_open=True, max_open=True)
    b = np.asarray(boots, dtype=float)
    b = b[np.isfinite(b)]
    if b.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(b, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def bootstrap_ci(
    statistic: Callable[..., np.ndarray],
    *arrays,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """Percentile-bootstrap interval of ``statistic`` over the units (axis 0) of ``arrays``, resampled
    together. ``statistic`` is vectorised as in ``bootstrap_distribution``, e.g.
    ``lambda x: x.mean(1)`` for a mean, or ``lambda hits, n: hits.sum(1) / n.sum(1)`` for a pooled share."""
    check_float("level", level, min=0.0, max=1.0, min_open=True, max_open=True)
    estimate, boots = bootstrap_distribution(statistic, *arrays, n_boot=n_boot, seed=seed)
    low, high = percentile_interval(boots, level)
    return Interval(estimate, low, high, level, n_boot, int(np.asarray(arrays[0]).shape[0]))


def mean_ci(values, *, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0, skipna: bool = False) -> Interval:
    """Bootstrap interval of the mean of per-unit ``values`` (``skipna``: NaN units are dropped first)."""
    check_bool("skipna", skipna)
    x = np.asarray(values, dtype=float).reshape(-1)
    if skipna:
        x = x[np.isfinite(x)]
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), level, n_boot, 0)
    return bootstrap_ci(lambda v: v.mean(1), x, n_boot=n_boot, level=level, seed=seed)


def pooled_ratio_ci(numerator, denominator, *, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> Interval:
    """Interval of ``Σ numerator / Σ denominator`` over units (a share pooled over each unit's samples)."""
    return bootstrap_ci(lambda a, b: a.sum(1) / b.sum(1), numerator, denominator, n_boot=n_boot, level=level, seed=seed)


__all__ = [
    "LEVEL",
    "N_BOOT",
    "Interval",
    "bootstrap_ci",
    "bootstrap_distribution",
    "mean_ci",
    "percentile_interval",
    "pooled_ratio_ci",
    "resample_indices",
]
