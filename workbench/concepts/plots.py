"""Figures of the concept module. Each returns a plotly ``go.Figure`` (never shown here)."""

from typing import Optional

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..figures import PALETTE, style

METHOD_LABELS = {
    "logistic": "Logistic CAV + GCAV", "mean_diff": "Mean difference (CAA)", "mean_centring": "Mean-centring",
    "pca_diff": "PCA of differences", "ablation": "Ablate + add (Arditi)", "ace": "ACE (affine)",
}


def _colour(method: str) -> str:
    order = list(METHOD_LABELS)
    return PALETTE[order.index(method) % len(PALETTE)] if method in order else PALETTE[-1]


def layer_accuracy_figure(sweep: pd.DataFrame, *, title: str = "Held-out probe accuracy by layer") -> go.Figure:
    """One line per concept: held-out accuracy of the logistic probe at each layer."""
    fig = go.Figure()
    for i, (concept, sub) in enumerate(sweep.groupby("concept", sort=False)):
        sub = sub.sort_values("layer")
        fig.add_trace(go.Scatter(x=sub["layer"], y=sub["test_accuracy"], mode="lines+markers", name=concept,
                                 line=dict(color=PALETTE[i % len(PALETTE)])))
    fig.add_hline(y=0.5, line_dash="dot", line_color="#888", annotation_text="chance")
    style(fig, title=title, x="layer (resid_post)", y="held-out accuracy (fraction correct)")
    fig.update_yaxes(range=[0.4, 1.02])
    return fig


def dose_response_figure(table: pd.DataFrame, *, title: str = "Dose-response") -> go.Figure:
    """Success and perplexity ratio against strength (in units of ‖μ⁺ − μ⁻‖), one line per (method,
    direction); dashed lines steer toward the negative side."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("concept success (judge)", "perplexity / unsteered"))
    base = table[table["method"] == "none"]
    for (method, toward), sub in table[table["method"] != "none"].groupby(["method", "toward"], sort=False):
        sub = sub.sort_values("strength")
        x = sub["strength"]
        dash = "solid" if toward == "positive" else "dash"
        name = f"{METHOD_LABELS.get(method, method)} → {toward}"
        for col, y in ((1, sub["success"]), (2, sub["perplexity_ratio"])):
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name, legendgroup=name, showlegend=col == 1,
                                     line=dict(color=_colour(method), dash=dash)), row=1, col=col)
    if len(base):
        fig.add_hline(y=float(base["success"].iloc[0]), line_dash="dot", line_color="#888", row=1, col=1,
                      annotation_text="unsteered")
        fig.add_hline(y=2.0, line_dash="dot", line_color="#D55E00", row=1, col=2, annotation_text="2× unsteered")
    style(fig, title=title, width=1100, height=480)
    fig.update_xaxes(title_text="strength (× ‖μ⁺ − μ⁻‖)")
    fig.update_yaxes(title_text="share of completions judged positive", range=[-0.02, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="perplexity ratio", type="log", row=1, col=2)
    return fig


def frontier_figure(table: pd.DataFrame, *, title: str = "Bake-off: concept success vs fluency",
                    max_ratio: Optional[float] = 2.0) -> go.Figure:
    """Concept success (y) against perplexity ratio (x, log), one frontier per method and one panel per
    direction. Each line starts at the unsteered point and follows increasing strength."""
    directions = [t for t in ("positive", "negative") if t in set(table["toward"])]
    fig = make_subplots(rows=1, cols=len(directions), subplot_titles=[f"steer toward {t}" for t in directions],
                        shared_yaxes=True)
    base = table[table["method"] == "none"].iloc[0]
    for col, t in enumerate(directions, start=1):
        for method, sub in table[(table["toward"] == t)].groupby("method", sort=False):
            sub = sub.sort_values("strength")
            x = [base["perplexity_ratio"]] + list(sub["perplexity_ratio"])
            y = [base["success"]] + list(sub["success"])
            text = ["unsteered"] + [f"strength {s:g}" for s in sub["strength"]]
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=METHOD_LABELS.get(method, method), text=text,
                                     legendgroup=method, showlegend=col == 1, line=dict(color=_colour(method))),
                          row=1, col=col)
        if max_ratio is not None:
            fig.add_vline(x=max_ratio, line_dash="dot", line_color="#D55E00", row=1, col=col)
        fig.update_xaxes(title_text="perplexity under unsteered model / unsteered (log)", type="log", row=1, col=col)
    style(fig, title=title, width=560 * len(directions), height=480)
    fig.update_yaxes(title_text="share of completions judged positive", range=[-0.02, 1.02], row=1, col=1)
    return fig
