"""Figures of circuit results (``workbench.circuits``): the DLA layer × head heatmap and the
accumulated-residual line."""

from typing import Optional

import numpy as np
import plotly.graph_objects as go

from ..circuits.dla import LogitAttribution
from .style import DIVERGING, PALETTE, reference_line, style


def _check(obj, cls, what: str):
    if not isinstance(obj, cls):
        raise TypeError(f"{what} needs a {cls.__name__}, got {type(obj).__name__}")
    return obj


def _heatmap(z: np.ndarray, *, x, y, zlabel: str, hover: str) -> go.Heatmap:
    m = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    m = m or 1.0
    return go.Heatmap(
        z=z,
        x=x,
        y=y,
        colorscale=DIVERGING,
        zmid=0,
        zmin=-m,
        zmax=m,
        colorbar=dict(title=zlabel),
        hovertemplate=hover + "<extra></extra>",
    )


def dla_heatmap(attr: LogitAttribution, *, title: Optional[str] = None) -> go.Figure:
    """Mean direct logit attribution of every head, layers on y and heads on x, centred at 0."""
    _check(attr, LogitAttribution, "dla_heatmap")
    grid = attr.head_grid().numpy()
    fig = go.Figure(
        _heatmap(
            grid,
            x=list(range(grid.shape[1])),
            y=list(range(grid.shape[0])),
            zlabel="DLA",
            hover="layer %{y}, head %{x}: %{z:.3f}",
        )
    )
    style(
        fig,
        title=title or f"Direct logit attribution per head ({attr.target}, mean over {attr.values.shape[1]} prompts)",
        x="head",
        y="layer",
        width=520,
        height=max(360, 16 * grid.shape[0] + 140),
    )
    fig.update_xaxes(dtick=1)
    return fig


def accumulated_figure(attr: LogitAttribution, *, title: Optional[str] = None) -> go.Figure:
    """The answer readout of the residual entering each layer: with the final norm's scale frozen
    (the running sum of component attributions, as in DLA) and recomputed (the logit lens)."""
    _check(attr, LogitAttribution, "accumulated_figure")
    n = attr.accumulated.shape[0]
    x = list(range(n))
    ticks = [f"{L}_pre" for L in range(n - 1)] + ["final"]
    fig = go.Figure()
    for i, (name, values) in enumerate(
        (("frozen final-norm scale (DLA)", attr.accumulated), ("recomputed norm (logit lens)", attr.lens))
    ):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=values.mean(1).numpy(),
                mode="lines+markers",
                name=name,
                line=dict(color=PALETTE[i]),
            )
        )
    fig.add_trace(reference_line(x, 0.0, name="0", showlegend=False))
    style(
        fig,
        title=title or f"Accumulated residual: {attr.target} by layer (mean over {attr.values.shape[1]} prompts)",
        x="residual stream entering layer",
        y=attr.target,
    )
    fig.update_xaxes(tickmode="array", tickvals=x, ticktext=ticks, tickangle=-45 if n > 12 else 0)
    return fig


__all__ = ["accumulated_figure", "dla_heatmap"]
