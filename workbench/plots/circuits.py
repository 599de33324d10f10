"""Figures of circuit results (``workbench.circuits``): the DLA layer × head heatmap, the
accumulated-residual line, attention patterns (one panel per head) and head-score maps."""

import math
from typing import Optional

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..circuits.dla import LogitAttribution
from ..circuits.edges import EdgeScores
from ..circuits.faithfulness import FaithfulnessCurve
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


def faithfulness_figure(curve: FaithfulnessCurve, *, title: Optional[str] = None) -> go.Figure:
    """Circuit metric against the number of kept edges (log x; k = 0, the corrupted run, is left
    off the axis) per scoring method, with random edges as mean and min–max band."""
    _check(curve, FaithfulnessCurve, "faithfulness_figure")
    ks = np.array(curve.ks)
    keep = ks > 0
    x = ks[keep]
    fig = go.Figure()
    if curve.random.shape[0] > 0:
        r = curve.random.numpy()[:, keep]
        fig.add_trace(go.Scatter(x=x, y=r.max(0), mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip"))
        fig.add_trace(
            go.Scatter(
                x=x,
                y=r.min(0),
                mode="lines",
                line=dict(width=0),
                fill="tonexty",
                fillcolor="rgba(120,120,120,0.2)",
                name=f"random edges (min–max of {r.shape[0]})",
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(x=x, y=r.mean(0), mode="lines", name="random edges (mean)", line=dict(color="#777", dash="dot"))
        )
    for i, (method, values) in enumerate(curve.curves.items()):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=values.numpy()[keep],
                mode="lines+markers",
                name=method,
                line=dict(color=PALETTE[i % len(PALETTE)]),
                hovertemplate=f"{method}: %{{x}} edges → %{{y:.3f}}<extra></extra>",
            )
        )
    fig.add_trace(reference_line(x.tolist(), 1.0, name="clean run (1)", showlegend=False))
    fig.add_trace(reference_line(x.tolist(), 0.0, name="corrupted run (0)", showlegend=False))
    style(
        fig,
        title=title or f"Faithfulness of top-k edge circuits ({curve.n_edges} edges in the graph)",
        x="edges kept (others patched to corrupted)",
        y="normalised metric",
    )
    fig.update_xaxes(type="log")
    return fig


_INPUT_DASH = {"q": "solid", "k": "dash", "v": "dot", "mlp": "solid", "logits": "solid"}


def circuit_figure(
    scores: EdgeScores, k: int = 30, *, interactive: bool = True, title: Optional[str] = None
) -> go.Figure:
    """The top-``k`` edges of ``scores`` as a graph: components as nodes (y = layer, x = head;
    MLPs on the right, embeddings at the bottom, logits at the top), edge width ∝ |score|, blue for
    positive and red for negative scores, line style by the receiver's input (q solid, k dashed,
    v dotted). ``interactive=False`` writes node labels instead of hover text (static figures)."""
    _check(scores, EdgeScores, "circuit_figure")
    check_int("k", k, min=1)
    check_bool("interactive", interactive)
    g = scores.graph
    n_heads = max((s.head for s in g.senders if s.head is not None), default=0) + 1
    n_layers = max((s.layer for s in g.senders if s.layer is not None), default=0) + 1
    kv = max((r.head for r in g.receivers if r.kind == "k" and r.head is not None), default=0) + 1
    group = n_heads // kv if kv else 1

    def sender_xy(s):
        if s.kind == "embed":
            return (n_heads - 1) / 2, -1.0
        if s.kind == "mlp":
            return n_heads + 0.5, s.layer + 0.5
        return float(s.head), float(s.layer)

    def receiver_xy(r):
        if r.kind == "logits":
            return (n_heads - 1) / 2, float(n_layers)
        if r.kind == "mlp":
            return n_heads + 0.5, r.layer + 0.5
        if r.kind == "q":
            return float(r.head), float(r.layer)
        return r.head * group + (group - 1) / 2, float(r.layer)  # a key/value head: the middle of its group

    edges = scores.ranked(min(k, g.n_edges))
    by_label_s = {s.label: s for s in g.senders}
    by_label_r = {r.label: r for r in g.receivers}
    top = max(abs(e[2]) for e in edges) or 1.0
    fig = go.Figure()
    nodes: dict[str, tuple[float, float]] = {}
    for s_lab, r_lab, v in edges:
        s, r = by_label_s[s_lab], by_label_r[r_lab]
        (x0, y0), (x1, y1) = sender_xy(s), receiver_xy(r)
        nodes[s_lab] = (x0, y0)
        nodes[r_lab.split(".")[0] if r.kind == "q" else r_lab] = (x1, y1)
        fig.add_trace(
            go.Scatter(
                x=[x0, x1],
                y=[y0, y1],
                mode="lines",
                line=dict(
                    width=0.5 + 6 * abs(v) / top, color=PALETTE[0] if v > 0 else PALETTE[3], dash=_INPUT_DASH[r.kind]
                ),
                opacity=0.75,
                showlegend=False,
                hovertemplate=f"{s_lab} → {r_lab}: {v:.3g}<extra></extra>" if interactive else None,
                hoverinfo=None if interactive else "skip",
            )
        )
    labels = list(nodes)
    fig.add_trace(
        go.Scatter(
            x=[nodes[n][0] for n in labels],
            y=[nodes[n][1] for n in labels],
            mode="markers+text",
            text=labels,
            textposition="top center",
            textfont=dict(size=9),
            marker=dict(size=10, color="#222", line=dict(color="white", width=1)),
            showlegend=False,
            hovertemplate="%{text}<extra></extra>" if interactive else None,
            hoverinfo=None if interactive else "skip",
        )
    )
    style(
        fig,
        title=title
        or f"Circuit: top {len(edges)} edges by {scores.method} (blue +, red −; q solid, k dashed, v dotted)",
        x="head (MLPs on the right)",
        y="layer",
        width=760,
        height=max(460, 22 * (n_layers + 2) + 160),
    )
    fig.update_yaxes(range=[-1.6, n_layers + 0.6])
    fig.update_xaxes(range=[-1, n_heads + 1.5], dtick=1)
    return fig


__all__ = [
    "accumulated_figure",
    "attention_figure",
    "circuit_figure",
    "dla_heatmap",
    "faithfulness_figure",
    "head_scores_figure",
    "path_matrix_figure",
    "path_patching_heatmap",
]
