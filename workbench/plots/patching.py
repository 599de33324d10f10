"""Figures of patching results (``workbench.patching``): a grid as a heatmap, activation patching
next to its estimates, and estimate-vs-patching scatter plots with Pearson r (Jafari et al. 2025)."""

from collections.abc import Sequence
from typing import Optional

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from ..patching.faithfulness import FaithfulnessResult, pearson
from .style import DIVERGING, PALETTE, style


def _stream_of(result: FaithfulnessResult, stream: str) -> str:
    if stream not in result.act:
        raise ValueError(f"the result has no {stream!r} grid; it has {', '.join(result.act)}")
    return stream


def _labels(tokens: Optional[Sequence[str]], n: int, width: int) -> list:
    if tokens is not None and len(tokens) == n:
        return [f"{i}:{t!r}"[:width] for i, t in enumerate(tokens)]
    return list(range(n))


def _diverging(g, x, m: float, **kw) -> go.Heatmap:
    """A heatmap trace of grid ``g`` on the diverging scale, centred at 0 and clipped at ``±m``."""
    return go.Heatmap(z=g, x=x, y=list(range(g.shape[0])), colorscale=DIVERGING, zmid=0, zmin=-m, zmax=m, **kw)


def scatter_figure(result: FaithfulnessResult, stream: str, *, title: Optional[str] = None) -> go.Figure:
    """Estimate vs activation patching for every (layer, position) of one component type; one
    colour per method, r in the legend, and the y = x line."""
    _stream_of(result, stream)
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
    if not isinstance(grid, Tensor) or grid.ndim != 2:
        raise ValueError(f"grid_heatmap needs a 2-d grid [layer, pos or head], got {getattr(grid, 'shape', grid)}")
    g = grid.detach().cpu().numpy()
    x = _labels(tokens, g.shape[1], 18)
    m = float(np.nanmax(np.abs(g))) if np.isfinite(g).any() else 1.0
    fig = go.Figure(_diverging(g, x, m, colorbar=dict(title=zlabel)))
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
    _stream_of(result, stream)
    if result.act[stream].ndim != 2:
        raise ValueError(f"grids_figure draws 2-d grids; {stream!r} is {tuple(result.act[stream].shape)}")
    panels = {"activation patching": result.act[stream], **{m: g[stream] for m, g in result.estimates.items()}}
    m = max(float(torch.nan_to_num(g).abs().max()) for g in panels.values()) or 1.0
    fig = make_subplots(
        rows=1, cols=len(panels), subplot_titles=list(panels), shared_yaxes=True, horizontal_spacing=0.02
    )
    x = _labels(tokens, result.act[stream].shape[1], 14)
    for i, g in enumerate(panels.values()):
        fig.add_trace(_diverging(g.numpy(), x, m, showscale=i == 0, colorbar=dict(title="metric")), row=1, col=i + 1)
    style(
        fig,
        title=f"{result.task}: {stream} patching grid and its estimates",
        width=330 * len(panels) + 120,
        height=max(440, 14 * result.act[stream].shape[0] + 180),
    )
    fig.update_yaxes(title_text="layer", row=1, col=1)
    fig.update_xaxes(tickangle=-45)
    return fig


__all__ = ["grid_heatmap", "grids_figure", "scatter_figure"]
