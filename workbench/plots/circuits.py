"""Figures of circuit results (``workbench.circuits``): the DLA layer × head heatmap, the
accumulated-residual line, attention patterns (one panel per head) and head-score maps."""

import math
from typing import Optional

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..circuits.dla import LogitAttribution
from ..circuits.heads import AttentionPatterns, HeadScores
from ..circuits.path_patching import PathPatching, PathPatchingMatrix
from ..validation import check_bool, check_int
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


def _token_labels(strings, width: int = 12) -> list[str]:
    return [f"{i}:{t!r}"[: width + 2] for i, t in enumerate(strings)]  # unique even when tokens repeat


def attention_figure(
    patterns: AttentionPatterns,
    prompt: int = 0,
    *,
    cols: int = 3,
    interactive: bool = True,
    title: Optional[str] = None,
) -> go.Figure:
    """Attention patterns of every recorded head on one prompt, one panel per head: keys on x,
    queries on y (top to bottom), tokens on both axes. ``interactive=False`` gives the static
    version for papers (no hover, no per-token tick labels past 24 tokens)."""
    _check(patterns, AttentionPatterns, "attention_figure")
    n_prompts = patterns.patterns.shape[0]
    check_int("prompt", prompt, min=0, max=n_prompts - 1)
    check_int("cols", cols, min=1)
    check_bool("interactive", interactive)
    heads = patterns.heads
    cols = min(cols, len(heads))
    rows = math.ceil(len(heads) / cols)
    labels = _token_labels(patterns.strings[prompt])
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[f"L{L}H{h}" for L, h in heads],
        horizontal_spacing=0.08 if interactive else 0.04,
        vertical_spacing=0.12 if rows > 1 else 0.0,
    )
    for i in range(len(heads)):
        z = patterns.patterns[prompt, i].numpy()
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=labels,
                y=labels,
                zmin=0,
                zmax=1,
                colorscale="Blues",
                showscale=i == 0,
                colorbar=dict(title="attention"),
                hovertemplate="query %{y}<br>key %{x}<br>%{z:.3f}<extra></extra>" if interactive else None,
                hoverinfo=None if interactive else "skip",
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
    show_ticks = interactive or len(labels) <= 24
    fig.update_yaxes(autorange="reversed", showticklabels=show_ticks, tickfont=dict(size=9))
    fig.update_xaxes(showticklabels=show_ticks, tickfont=dict(size=9), tickangle=-60)
    side = 300 if interactive else 220
    style(
        fig,
        title=title or f"Attention patterns, prompt {prompt}",
        width=max(520, side * cols + 120),
        height=max(360, side * rows + 120),
    )
    return fig


def head_scores_figure(scores: HeadScores, *, title: Optional[str] = None) -> go.Figure:
    """One layer × head map per score kind (0 to 1)."""
    _check(scores, HeadScores, "head_scores_figure")
    kinds = list(scores.scores)
    fig = make_subplots(rows=1, cols=len(kinds), subplot_titles=[k.replace("_", " ") for k in kinds])
    for i, k in enumerate(kinds):
        g = scores.scores[k].numpy()
        fig.add_trace(
            go.Heatmap(
                z=g,
                x=list(range(g.shape[1])),
                y=list(range(g.shape[0])),
                zmin=0,
                zmax=1,
                colorscale="Viridis",
                showscale=i == len(kinds) - 1,
                colorbar=dict(title="score"),
                hovertemplate=f"{k}<br>layer %{{y}}, head %{{x}}: %{{z:.3f}}<extra></extra>",
            ),
            row=1,
            col=i + 1,
        )
    n_layers = scores.scores[kinds[0]].shape[0]
    style(
        fig,
        title=title or f"Head scores on {scores.source}",
        width=300 * len(kinds) + 120,
        height=max(360, 16 * n_layers + 140),
    )
    fig.update_xaxes(title_text="head", dtick=1)
    fig.update_yaxes(title_text="layer", col=1)
    return fig


def path_patching_heatmap(result: PathPatching, *, title: Optional[str] = None) -> go.Figure:
    """Path-patching effect of every head sender (layer × head, centred at 0; blank = not a sender)."""
    _check(result, PathPatching, "path_patching_heatmap")
    grid = result.grid().numpy()
    receivers = ", ".join(r.label for r in result.receivers)
    fig = go.Figure(
        _heatmap(
            grid,
            x=list(range(grid.shape[1])),
            y=list(range(grid.shape[0])),
            zlabel="patched metric",
            hover="sender L%{y}H%{x}: %{z:.3f}",
        )
    )
    style(
        fig,
        title=title or f"Path patching: heads → {receivers}",
        x="head",
        y="layer",
        width=560,
        height=max(360, 16 * grid.shape[0] + 140),
    )
    fig.update_xaxes(dtick=1)
    return fig


def path_matrix_figure(matrix: PathPatchingMatrix, *, title: Optional[str] = None) -> go.Figure:
    """Sender × receiver path patching (each receiver alone), centred at 0; blank = no direct path."""
    _check(matrix, PathPatchingMatrix, "path_matrix_figure")
    z = matrix.values.numpy()
    fig = go.Figure(
        _heatmap(
            z,
            x=[r.label for r in matrix.receivers],
            y=[s.label for s in matrix.senders],
            zlabel="patched metric",
            hover="%{y} → %{x}: %{z:.3f}",
        )
    )
    style(
        fig,
        title=title or "Path patching: sender × receiver",
        x="receiver",
        y="sender",
        width=max(480, 60 * z.shape[1] + 260),
        height=max(360, 22 * z.shape[0] + 160),
    )
    fig.update_yaxes(autorange="reversed")
    return fig


__all__ = [
    "accumulated_figure",
    "attention_figure",
    "dla_heatmap",
    "head_scores_figure",
    "path_matrix_figure",
    "path_patching_heatmap",
]
