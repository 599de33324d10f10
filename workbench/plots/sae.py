"""Figures of SAE features: the replication of Arad, Mueller & Belinkov (2025) and the dashboard panels.

* :func:`score_scatter_figure` -- input score ``S_in`` against output score ``S_out``, one dot per
  feature, one panel per SAE.
* :func:`layer_trend_figure` -- mean ``S_in`` and ``S_out`` by layer.
* :func:`steering_figure` -- generation success and perplexity against steering strength per group.
* :func:`logit_lens_figure` -- a feature's top and bottom logit-lens tokens.
* :func:`activation_histogram_figure` -- a feature's non-zero activations over the corpus.

Each takes workbench results (score tables, :class:`~workbench.sae.feature_lens.FeatureLens`,
:class:`~workbench.sae.top_examples.TopExamples`) and returns a plotly figure; nothing is written.
"""

from collections.abc import Mapping, Sequence
from typing import Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..sae.feature_lens import FeatureLens
from ..sae.top_examples import TopExamples
from ..tokens import token_strings
from .style import PALETTE, style

GROUP_COLOURS = (3, 1, 7, 0)  # palette indices for the steering groups, in the order given


def visible(text: str) -> str:
    """A token's text with newlines and tabs made visible (whitespace-only tokens as their repr)."""
    return text.replace("\n", "↵").replace("\t", "⇥") if text.strip() else repr(text)[1:-1] or "∅"


def layer_key(label) -> tuple:
    """Sort key for layer labels such as ``"L6"`` / ``"L24"``: by the number in them, then the text."""
    digits = "".join(ch for ch in str(label) if ch.isdigit())
    return (int(digits) if digits else 10**9, str(label))


def score_scatter_figure(
    tables: Mapping[str, pd.DataFrame],
    *,
    min_examples: int = 10,
    title: str = "Input score vs output score per feature",
) -> go.Figure:
    """One panel per SAE (``{label: score table}``): each dot a feature with ≥ ``min_examples`` top examples."""
    names = list(tables)
    if not names:
        raise ValueError("no score tables to plot")
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, shared_yaxes=True, horizontal_spacing=0.04)
    for c, name in enumerate(names, start=1):
        t = tables[name].dropna(subset=["input_score", "output_score"])
        t = t.loc[t["n_examples"] >= min_examples]
        hover = [
            f"feature {f}<br>S_in {a:.2f}, S_out {b:.3f}<br>{' '.join(map(repr, toks[:5]))}"
            for f, a, b, toks in zip(t["feature"], t["input_score"], t["output_score"], t["top_tokens"])
        ]
        fig.add_trace(
            go.Scattergl(
                x=t["input_score"],
                y=t["output_score"],
                mode="markers",
                name=name,
                showlegend=False,
                marker=dict(size=4, opacity=0.45, color=PALETTE[(c - 1) % len(PALETTE)]),
                hovertext=hover,
                hoverinfo="text",
            ),
            row=1,
            col=c,
        )
        fig.update_xaxes(title_text="input score S_in (share)", range=[-0.03, 1.03], row=1, col=c)
    fig.update_yaxes(title_text="output score S_out", row=1, col=1)
    return style(fig, title=title, width=max(420, 330 * len(names)), height=420)


def layer_trend_figure(
    tables: Mapping[int, pd.DataFrame], *, min_examples: int = 10, title: str = "Input and output scores by layer"
) -> go.Figure:
    """Two panels against the SAE's layer (``{layer: score table}``): mean (± s.e.m.) input score
    and mean output score, over features with ≥ ``min_examples`` top examples (y axes from 0)."""
    layers = sorted(tables)
    if not layers:
        raise ValueError("no score tables to plot")
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("input score S_in", "output score S_out"), horizontal_spacing=0.14
    )
    for col, (key, colour) in enumerate((("input_score", PALETTE[0]), ("output_score", PALETTE[3])), start=1):
        means, sems, ns = [], [], []
        for L in layers:
            t = tables[L]
            v = t.loc[t["n_examples"] >= min_examples, key].dropna().to_numpy(dtype=float)
            means.append(float(v.mean()) if len(v) else float("nan"))
            sems.append(float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0)  # pandas' sem
            ns.append(len(v))
        fig.add_trace(
            go.Scatter(
                x=layers,
                y=means,
                error_y=dict(type="data", array=sems),
                mode="lines+markers",
                name=f"mean {key.replace('_', ' ')}",
                line=dict(color=colour),
                showlegend=False,
                customdata=ns,
                hovertemplate="layer %{x}: mean %{y:.4f} over %{customdata} features<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text="layer (resid_post)", tickvals=layers, row=1, col=col)
        fig.update_yaxes(title_text=f"mean {key.replace('_', ' ')} (± s.e.m.)", rangemode="tozero", row=1, col=col)
    return style(fig, title=title, width=820, height=420)


def steering_figure(
    summary: pd.DataFrame,
    *,
    groups: Optional[Sequence[str]] = None,
    title: str = "Steering with SAE features: success and fluency",
) -> go.Figure:
    """Top row: generation success vs strength per group, one panel per layer (strength 0 = the
    unsteered chance level). Bottom row: median perplexity of the generations (log scale).
    ``summary`` has columns layer, group, strength, success, success_sem, perplexity_median;
    ``groups`` fixes the order (and colours) of the groups (default: as they appear)."""
    layers = sorted(dict.fromkeys(summary["layer"]), key=layer_key)
    if not layers:
        raise ValueError("the steering summary is empty")
    groups = list(groups) if groups is not None else list(dict.fromkeys(summary["group"]))
    fig = make_subplots(
        rows=2,
        cols=len(layers),
        subplot_titles=layers,
        shared_xaxes=True,
        vertical_spacing=0.1,
        horizontal_spacing=0.05,
    )
    for c, layer in enumerate(layers, start=1):
        for gi, group in enumerate(groups):
            g = summary.loc[(summary["layer"] == layer) & (summary["group"] == group)].sort_values("strength")
            if g.empty:
                continue
            colour = PALETTE[GROUP_COLOURS[gi % len(GROUP_COLOURS)]]
            fig.add_trace(
                go.Scatter(
                    x=g["strength"],
                    y=g["success"],
                    error_y=dict(type="data", array=g["success_sem"].fillna(0)),
                    mode="lines+markers",
                    name=group,
                    legendgroup=group,
                    showlegend=c == 1,
                    line=dict(color=colour),
                ),
                row=1,
                col=c,
            )
            fig.add_trace(
                go.Scatter(
                    x=g["strength"],
                    y=g["perplexity_median"],
                    mode="lines+markers",
                    name=group,
                    legendgroup=group,
                    showlegend=False,
                    line=dict(color=colour, dash="dot"),
                ),
                row=2,
                col=c,
            )
        fig.update_xaxes(title_text="strength s (× max activation)", row=2, col=c)
        fig.update_yaxes(type="log", row=2, col=c)
    fig.update_yaxes(range=[-0.03, 1.03], row=1)  # one scale for every layer: success is a share
    fig.update_yaxes(title_text="success (share in T_i)", row=1, col=1)
    fig.update_yaxes(title_text="perplexity", row=2, col=1)
    return style(fig, title=title, width=max(500, 360 * len(layers)), height=640)


def _check_feature(feature: int, d_sae: int) -> None:
    if isinstance(feature, bool) or not isinstance(feature, int) or not 0 <= feature < d_sae:
        raise IndexError(f"feature must be an int in 0..{d_sae - 1}, got {feature!r}")


def logit_lens_figure(lens: FeatureLens, feature: int, model=None, *, n_top: int = 15, n_bottom: int = 10) -> go.Figure:
    """Horizontal bars: the feature's top-``n_top`` logit-lens tokens (logits of the model's readout
    of ``d_i``) and its ``n_bottom`` most suppressed tokens; token texts from ``model``'s tokenizer."""
    _check_feature(feature, lens.top_tokens.shape[0])
    if not bool(lens.computed[feature]):
        raise ValueError(f"the feature lens was not computed for feature {feature}")
    top_ids = lens.top_tokens[feature, :n_top].tolist()
    top_vals = lens.top_logits[feature, :n_top].tolist()
    bot_ids = lens.bottom_tokens[feature, :n_bottom].tolist()
    bot_vals = lens.bottom_logits[feature, :n_bottom].tolist()
    texts = token_strings(model, top_ids + bot_ids)
    labels = [f"{visible(s)!r} ({t})" for s, t in zip(texts, top_ids + bot_ids)]
    colours = [PALETTE[0]] * len(top_ids) + [PALETTE[3]] * len(bot_ids)
    fig = go.Figure(
        go.Bar(
            x=top_vals + bot_vals,
            y=labels,
            orientation="h",
            marker_color=colours,
            hovertemplate="%{y}<br>logit %{x:.2f}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", tickfont=dict(family="monospace", size=11))
    fig.add_vline(x=0, line_color="#888", line_width=1)
    return style(
        fig,
        title=f"Feature {feature}: logit lens (top {len(top_ids)}, bottom {len(bot_ids)})",
        x="logit of the readout of d_i",
        y="token",
        width=520,
        height=max(360, 22 * len(labels) + 120),
    )


def activation_histogram_figure(examples: TopExamples, feature: int) -> go.Figure:
    """Counts of the feature's non-zero activations over the corpus, in log-spaced bins (log x)."""
    _check_feature(feature, examples.values.shape[0])
    counts = examples.hist_counts[feature].double()
    edges = examples.hist_edges.double()
    centres = (edges[:-1] * edges[1:]).sqrt()
    keep = counts > 0
    fig = go.Figure(
        go.Bar(
            x=centres[keep].tolist(),
            y=counts[keep].tolist(),
            width=(edges[1:] - edges[:-1])[keep].tolist(),
            marker_color=PALETTE[2],
            hovertemplate="activation ≈ %{x:.3g}<br>%{y} tokens<extra></extra>",
        )
    )
    fig.update_xaxes(type="log")
    n = int(examples.fire_count[feature])
    freq = n / max(examples.n_tokens, 1)
    return style(
        fig,
        title=f"Feature {feature}: activations > 0 on {n:,} of {examples.n_tokens:,} tokens ({freq:.2%})",
        x="activation (log scale)",
        y="tokens",
        width=520,
        height=360,
    )


__all__ = [
    "activation_histogram_figure",
    "layer_key",
    "layer_trend_figure",
    "logit_lens_figure",
    "score_scatter_figure",
    "steering_figure",
    "visible",
]
