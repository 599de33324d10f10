"""Benchmarks: each measures ratios against a baseline timed in the same run (median of repeats),
and against the machine's limits measured in the same run: the matmul peak (``matmul_gflops``) and
the memory bandwidth of a large copy (``copy_gbps``). ``machine_note`` records the load next to the
numbers (the machine is shared)."""

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


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


def matmul_gflops(m: int = 2048, k: int = 576, n: int = 1536, repeats: int = 5) -> float:
    """Measured float32 matmul throughput (GFLOP/s, ``2·m·k·n`` per product, median of ``repeats``
    after a warm-up) of ``[m, k] @ [k, n]`` into a preallocated output: the compute limit a
    benchmark compares its FLOP count with."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
    out = torch.empty(m, n)
    reps = max(1, int(2e9 // (2 * m * k * n)))  # about 2 GFLOP per timed call
    with torch.no_grad():
        t = median_time(lambda: [torch.matmul(a, b, out=out) for _ in range(reps)], repeats)
    return 2.0 * m * k * n * reps / t / 1e9


def copy_gbps(megabytes: int = 512, repeats: int = 5) -> float:
    """Measured memory bandwidth (GB/s, bytes read + written) of copying a ``megabytes`` float32
    tensor into another (median of ``repeats``)."""
    n = megabytes * 2**20 // 4
    src, dst = torch.ones(n), torch.empty(n)
    t = median_time(lambda: dst.copy_(src), repeats)
    return 2.0 * n * 4 / t / 1e9


def machine_note() -> str:
    """Load averages (1/5/15 min), cores and torch threads, to print next to timings."""
    one, five, fifteen = os.getloadavg()
    wait = os.environ.get("OMP_WAIT_POLICY")
    return (
        f"load {one:.1f}/{five:.1f}/{fifteen:.1f} on {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
        + (f", OMP_WAIT_POLICY={wait}" if wait else "")
    )


def rss_mb() -> float:
    """Resident memory of this process now (MB, from /proc/self/statm; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def peak_rss_mb() -> float:
    """High-water mark of this process' resident memory (MB, ``ru_maxrss``)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timing_table(rows: list[Timing], title: str):
    from rich.table import Table

    t = Table(title=title)
    for col in ("measurement", "seconds", "baseline", "baseline s", "ratio", "note"):
        t.add_column(col)
    for r in rows:
        t.add_row(r.name, f"{r.seconds:.3f}", r.baseline, f"{r.baseline_seconds:.3f}", f"{r.ratio:.2f}×", r.note)
    return t
