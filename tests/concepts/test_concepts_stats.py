"""The percentile bootstrap against a brute-force loop (same resamples, exact) and against
scipy.stats.bootstrap (independent resamples, within Monte-Carlo error)."""

import inspect

import numpy as np
import pytest
from scipy import stats as sps

from workbench.concepts.stats import (
    Interval,
    bootstrap_ci,
    bootstrap_distribution,
    mean_ci,
    percentile_interval,
    pooled_ratio_ci,
    resample_indices,
)


def test_equals_a_brute_force_percentile_bootstrap():
    rng = np.random.default_rng(3)
    hits = rng.integers(0, 4, size=30).astype(float)  # per prompt: hits out of 3 seeds
    n = np.full(30, 3.0)
    got = pooled_ratio_ci(hits, n, n_boot=500, seed=7)
    # brute force: loop over the same index draws, one resample at a time
    idx = np.random.default_rng(7).integers(0, 30, size=(500, 30))
    values = sorted(hits[i].sum() / n[i].sum() for i in idx)
    lo, hi = np.percentile(values, [2.5, 97.5])
    assert got.estimate == pytest.approx(hits.sum() / n.sum())
    assert (got.low, got.high) == pytest.approx((lo, hi), abs=1e-12)
    assert np.array_equal(resample_indices(30, 500, 7), idx)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_scipy_bootstrap_percentile(seed):
    x = np.random.default_rng(seed).lognormal(size=80)
    ours = mean_ci(x, n_boot=20000, seed=seed)
    ref = sps.bootstrap((x,), np.mean, method="percentile", n_resamples=20000, random_state=seed + 10)
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.05 * width)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.05 * width)


def test_paired_statistic_matches_scipy_paired():
    rng = np.random.default_rng(5)
    a = rng.normal(size=50)
    b = a + rng.normal(0.3, 0.2, size=50)  # strongly paired: the difference's interval is narrow
    ours = bootstrap_ci(lambda x, y: (y - x).mean(1), a, b, n_boot=20000, seed=1)
    ref = sps.bootstrap(
        (a, b),
        lambda x, y, axis=-1: (y - x).mean(axis),
        paired=True,
        method="percentile",
        n_resamples=20000,
        random_state=2,
    )
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.05 * width)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.05 * width)
    unpaired_width = mean_ci(b, n_boot=2000).high - mean_ci(b, n_boot=2000).low
    assert ours.high - ours.low < 0.5 * unpaired_width


def test_validation_and_nan_resamples():
    with pytest.raises(ValueError, match="same units"):
        bootstrap_ci(lambda x, y: x.sum(1), np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="at least one unit"):
        bootstrap_ci(lambda x: x.mean(1), np.ones(0))
    with pytest.raises(ValueError, match="must reduce"):
        bootstrap_ci(lambda x: x, np.ones(5))  # not reduced over units
    with pytest.raises(TypeError, match="callable"):
        inspect.unwrap(bootstrap_distribution)(3, np.ones(5))  # our check, below the signature check
    with pytest.raises(ValueError, match="level"):
        mean_ci(np.ones(5), level=1.0)
    with pytest.raises(TypeError, match="n_boot"):
        inspect.unwrap(mean_ci)(np.ones(5), n_boot=10.0)
    assert np.isnan(percentile_interval(np.array([np.nan, np.nan]))[0])
    assert mean_ci([np.nan, 1.0, 2.0], skipna=True).n_units == 2
    a, b = Interval(0.5, 0.4, 0.6), Interval(0.7, 0.61, 0.8)
    assert not a.overlaps(b) and a.overlaps(Interval(0.6, 0.6, 0.7)) and a.overlaps(Interval(1.0, np.nan, 1.0))
