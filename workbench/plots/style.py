"""The workbench figure style: paper-ready plotly defaults shared by every figure function.

Figure functions (in ``workbench.plots.*``) return a ``plotly.graph_objects.Figure`` and never show
or write it; writing lives in ``workbench.experiments.export``.
"""

from collections.abc import Sequence
from typing import Optional

import plotly.graph_objects as go

FONT = dict(family="Helvetica, Arial, sans-serif", size=13, color="#222")
# Colour-blind-safe qualitative palette (Okabe & Ito).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
DIVERGING = "RdBu_r"


def style(
    fig: go.Figure,
    *,
    title: Optional[str] = None,
    x: Optional[str] = None,
    y: Optional[str] = None,
    width: int = 760,
    height: int = 460,
) -> go.Figure:
    """Apply the workbench paper style: white background, readable fonts, labelled axes."""
    fig.update_layout(
        template="simple_white",
        font=FONT,
        width=width,
        height=height,
        margin=dict(l=70, r=30, t=70 if title else 30, b=60),
        colorway=PALETTE,
        legend=dict(bgcolor="rgba(255,255,255,0.8)"),
    )
    if title is not None:
        fig.update_layout(title=dict(text=title, x=0.02, xanchor="left"))
    if x is not None:
        fig.update_xaxes(title_text=x)
    if y is not None:
        fig.update_yaxes(title_text=y)
    return fig


def reference_line(
    x: Sequence, y: float, *, name: str, color: str = "#777", dash: str = "dash", showlegend: bool = True
) -> go.Scatter:
    """A horizontal reference line as a trace (shapes do not survive log axes and static export):
    ``y`` held across ``x``."""
    xs = list(x)
    return go.Scatter(
        x=[min(xs), max(xs)],
        y=[y, y],
        mode="lines",
        name=name,
        line=dict(color=color, dash=dash, width=1.5),
        showlegend=showlegend,
        hoverinfo="skip",
    )


__all__ = ["DIVERGING", "FONT", "PALETTE", "reference_line", "style"]
