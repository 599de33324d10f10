"""How faithful are the fast estimates? Pearson correlation of AtP and RelP grids with activation
patching, per component type (the measure of Jafari et al. 2025, Table 1), plus the figures.

Methods compared: ``atp`` (plain gradients), ``relp`` (LN + identity + half rules, the paper's default)
and ``relp_attn`` (the same plus the AH-rule / detached attention softmax)."""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from ..plots.style import DIVERGING, PALETTE, style
from .activation import activation_patch
from .attribution import RelPRules, attribution_patch
from .tasks import LogitDiffMetric, Task

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
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; use {', '.join(METHODS)}")
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


# --------------------------------------------------------------------------- figures
def scatter_figure(result: FaithfulnessResult, stream: str, *, title: Optional[str] = None) -> go.Figure:
    """Estimate vs activation patching for every (layer, position) of one component type; one
    colour per method, r in the legend, and the y = x line."""
    fig = go.Figure()
    act = result.act[stream].flatten().numpy()
    lo, hi = float(np.nanmin(act)), float(np.nanmax(act))
    for i, (m, grids) in enumerate(result.estimates.items()):
        est = grids[stream].flatten().numpy()
        r = pearson(grids[stream], result.act[stream])
        lo, hi = min(lo, float(np.nanmin(est))), max(hi, float(np.nanmax(est)))
        fig.add_trace(
            go.Scatter(
                x=act,
                y=est,
                mode="markers",
                name=f"{m} (r = {r:.3f})",
                marker=dict(color=PALETTE[i % len(PALETTE)], size=6, opacity=0.7),
            )
        )
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x", line=dict(color="#888", dash="dash")))
    style(
        fig,
        title=title or f"{result.task}: {stream}, estimate vs activation patching",
        x="activation patching (normalised metric)",
        y="estimate (normalised metric)",
    )
    return fig


def grid_heatmap(
    grid: Tensor,
    *,
    tokens: Optional[Sequence[str]] = None,
    title: str = "",
    zlabel: str = "patched metric",
    x_label: str = "position: token",
) -> go.Figure:
    """A ``[layer, pos]`` (or ``[layer, head]``) grid as a heatmap, centred at zero."""
    g = grid.numpy()
    x = (
        [f"{i}:{t!r}"[:18] for i, t in enumerate(tokens)]
        if tokens is not None and len(tokens) == g.shape[1]
        else list(range(g.shape[1]))
    )
    m = float(np.nanmax(np.abs(g))) if np.isfinite(g).any() else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=g,
            x=x,
            y=list(range(g.shape[0])),
            colorscale=DIVERGING,
            zmid=0,
            zmin=-m,
            zmax=m,
            colorbar=dict(title=zlabel),
        )
    )
    style(
        fig,
        title=title,
        x=x_label,
        y="layer",
        width=max(560, 45 * g.shape[1] + 200),
        height=max(420, 14 * g.shape[0] + 160),
    )
    fig.update_xaxes(tickangle=-45)
    return fig


def grids_figure(result: FaithfulnessResult, stream: str, *, tokens: Optional[Sequence[str]] = None) -> go.Figure:
    """Activation patching and every estimate of one component side by side (shared colour scale)."""
    panels = {"activation patching": result.act[stream], **{m: g[stream] for m, g in result.estimates.items()}}
    m = max(float(torch.nan_to_num(g).abs().max()) for g in panels.values()) or 1.0
    fig = make_subplots(
        rows=1, cols=len(panels), subplot_titles=list(panels), shared_yaxes=True, horizontal_spacing=0.02
    )
    T = result.act[stream].shape[1]
    x = [f"{i}:{t!r}"[:14] for i, t in enumerate(tokens)] if tokens is not None and len(tokens) == T else list(range(T))
    for i, (name, g) in enumerate(panels.items()):
        fig.add_trace(
            go.Heatmap(
                z=g.numpy(),
                x=x,
                y=list(range(g.shape[0])),
                colorscale=DIVERGING,
                zmid=0,
                zmin=-m,
                zmax=m,
                showscale=i == 0,
                colorbar=dict(title="metric"),
            ),
            row=1,
            col=i + 1,
        )
    style(
        fig,
        title=f"{result.task}: {stream} patching grid and its estimates",
        width=330 * len(panels) + 120,
        height=max(440, 14 * result.act[stream].shape[0] + 180),
    )
    fig.update_yaxes(title_text="layer", row=1, col=1)
    fig.update_xaxes(tickangle=-45)
    return fig


__all__ = [
    "METHODS",
    "FaithfulnessResult",
    "grid_heatmap",
    "grids_figure",
    "measure_faithfulness",
    "pearson",
    "scatter_figure",
]
