"""Benchmarks: each measures ratios against a baseline timed in the same run (median of repeats)."""

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import List


@dataclass(frozen=True)
class Timing:
    """One benchmark row: ``ratio = seconds / baseline_seconds`` (below 1 means faster than the baseline)."""

    name: str
    seconds: float
    baseline: str
    baseline_seconds: float
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.seconds / self.baseline_seconds


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls after ``warmup`` untimed calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timing_table(rows: list[Timing], title: str):
    from rich.table import Table

    t = Table(title=title)
    for col in ("measurement", "seconds", "baseline", "baseline s", "ratio", "note"):
        t.add_column(col)
    for r in rows:
        t.add_row(r.name, f"{r.seconds:.3f}", r.baseline, f"{r.baseline_seconds:.3f}", f"{r.ratio:.2f}×", r.note)
    return t
