"""How faithful are the fast estimates? Pearson correlation of AtP and RelP grids with activation
patching, per component type (the measure of Jafari et al. 2025, Table 1). Figures of the result
are in ``workbench.plots.patching``.

Methods compared: ``atp`` (plain gradients), ``relp`` (LN + identity + half rules, the paper's default)
and ``relp_attn`` (the same plus the AH-rule / detached attention softmax)."""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor

from ..validation import check_bool, check_int
from .activation import activation_patch, check_stream
from .attribution import attribution_patch
from .metric import LogitDiffMetric
from .rules import RelPRules, relp_blocker
from .tasks import Task

METHODS = {"atp": RelPRules.none(), "relp": RelPRules(), "relp_attn": RelPRules(attention=True)}


def pearson(x: Tensor, y: Tensor) -> float:
    """Pearson correlation of two grids over their finite entries (NaN if either is constant)."""
    a, b = x.flatten().double(), y.flatten().double()
    ok = torch.isfinite(a) & torch.isfinite(b)
    a, b = a[ok], b[ok]
    a, b = a - a.mean(), b - b.mean()
    den = (a.norm() * b.norm()).item()
    return float("nan") if den == 0 else float((a @ b).item() / den)


@dataclass
class FaithfulnessResult:
    """Grids of activation patching (``act``) and each estimate, their correlations, and timings (s)."""

    task: str
    streams: list[str]
    act: dict[str, Tensor]
    estimates: dict[str, dict[str, Tensor]]  # method -> stream -> grid
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def correlations(self) -> dict[str, dict[str, float]]:
        """method -> stream -> Pearson r with activation patching."""
        return {m: {s: pearson(g[s], self.act[s]) for s in self.streams} for m, g in self.estimates.items()}

    def to_frame(self):
        import pandas as pd

        rows = [
            {"task": self.task, "component": s, "method": m, "pearson_r": r}
            for m, by in self.correlations.items()
            for s, r in by.items()
        ]
        return pd.DataFrame(rows)


def measure_faithfulness(
    model,
    task: Task,
    metric: LogitDiffMetric,
    streams: Sequence[str] = ("resid_pre", "attn_out", "mlp_out"),
    methods: Sequence[str] = ("atp", "relp", "relp_attn"),
    *,
    act: Optional[dict[str, Tensor]] = None,
    tokens_per_pass: int = 2048,
    progress: bool = True,
) -> FaithfulnessResult:
    """Run activation patching (unless ``act`` grids are given) and each estimate on ``task``."""
    if not isinstance(task, Task):
        raise TypeError(f"task must be a Task, got {type(task).__name__}")
    if isinstance(streams, str) or len(streams) == 0:
        raise ValueError(f"streams must be a non-empty list of stream names, got {streams!r}")
    streams = [check_stream(s) for s in streams]
    if isinstance(methods, str) or len(methods) == 0:
        raise ValueError(f"methods must be a non-empty list of {', '.join(METHODS)}, got {methods!r}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; use {', '.join(METHODS)}")
    check_int("tokens_per_pass", tokens_per_pass, min=1)
    check_bool("progress", progress)
    for m in methods:  # refuse an uncovered config before the slow activation patching
        blocker = relp_blocker(model, METHODS[m])
        if blocker is not None:
            raise ValueError(f"method {m!r} does not cover this model's config: {blocker}")
    if act is not None:
        missing = [s for s in streams if s not in act]
        if missing:
            raise ValueError(f"act has no grid for streams {missing}")
    seconds = {}
    if act is None:
        t = time.perf_counter()
        act = {
            s: activation_patch(
                model, task.clean, task.corrupted, metric, s, tokens_per_pass=tokens_per_pass, progress=progress
            )
            for s in streams
        }
        seconds["act"] = time.perf_counter() - t
    est = {}
    for m in methods:
        t = time.perf_counter()
        est[m] = attribution_patch(model, task.clean, task.corrupted, metric, streams, rules=METHODS[m])
        seconds[m] = time.perf_counter() - t
    return FaithfulnessResult(task.name, list(streams), act, est, seconds)


__all__ = ["METHODS", "FaithfulnessResult", "measure_faithfulness", "pearson"]
