"""Figures of the concept module (``workbench.concepts``). Each returns a plotly ``go.Figure`` and
never shows or writes it (``workbench.experiments.export.save_figure`` does).

- ``layer_accuracy_figure``: held-out probe accuracy by layer, one line per concept;
- ``dose_response_figure``: success and perplexity ratio against strength, one colour per method,
  the random-direction control in grey, bootstrap intervals as error bars;
- ``frontier_figure``: success against perplexity ratio, one frontier per method and direction, with
  error bars on both axes;
- ``bakeoff_figures``: the dose-response and frontier figures of a ``BakeoffResult``;
- ``transfer_figure``, ``cosine_figure``, ``source_comparison_figure``: probes and vectors across data
  sources (template vs real text);
- ``monitor_html`` (token-coloured HTML, rendered in Jupyter) and ``monitor_figure`` (a line per
  completion): the concept monitor of ``concepts.monitor``.

Method labels and colours come from the method registry (``ConceptMethod.label``, registration order).
"""

import html as _html
import itertools
from typing import Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..concepts.bakeoff import BakeoffResult
from ..concepts.controls import CONTROL_LABEL, CONTROL_METHOD
from ..concepts.method import ConceptMethod, method_class, method_names
from .style import PALETTE, reference_line, style


def method_label(method: str) -> str:
    """The registered method's ``label`` (the name itself for unregistered ones)."""
    try:
        return method_class(method).label or method
    except ValueError:
        return method


def _require(table: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{what} needs a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what}: the table lacks column(s) {missing}; it has {list(table.columns)}")


_SWEEP_COLUMNS = ("method", "toward", "strength", "success", "perplexity_ratio")
CONTROL_COLOUR = "#999999"


def _colour(method: str) -> str:
    if method == CONTROL_METHOD:
        return CONTROL_COLOUR
    order = method_names()
    return PALETTE[order.index(method) % len(PALETTE)] if method in order else PALETTE[-1]


def _label(method: str) -> str:
    """The legend label; methods whose strength is not in units of ‖μ⁺ − μ⁻‖ say what it is."""
    if method == CONTROL_METHOD:
        return CONTROL_LABEL
    try:
        unit = method_class(method).strength_unit
    except ValueError:
        return method
    default = ConceptMethod.strength_unit
    return method_label(method) if unit == default else f"{method_label(method)} (strength = {unit})"


def _error(sub: pd.DataFrame, key: str) -> Optional[dict]:
    """Plotly error bars from the ``<key>_low``/``<key>_high`` interval columns (None without them)."""
    lo, hi = f"{key}_low", f"{key}_high"
    if lo not in sub.columns or hi not in sub.columns:
        return None
    y = sub[key].to_numpy(dtype=float)
    return dict(
        type="data",
        symmetric=False,
        array=(sub[hi].to_numpy(dtype=float) - y).clip(min=0).tolist(),
        arrayminus=(y - sub[lo].to_numpy(dtype=float)).clip(min=0).tolist(),
        thickness=1,
        width=2,
    )


def _level_text(table: pd.DataFrame) -> str:
    """A legend line naming the error bars (empty for a table without intervals)."""
    if "success_low" not in table.columns:
        return ""
    level = table.attrs.get("level", 0.95)
    return f"<br>bars: {100 * level:g} % bootstrap<br>intervals over prompts"


def layer_accuracy_figure(sweep: pd.DataFrame, *, title: str = "Held-out probe accuracy by layer") -> go.Figure:
    """One line per concept: held-out accuracy of the logistic probe at each layer."""
    _require(sweep, ("concept", "layer", "test_accuracy"), "layer_accuracy_figure")
    fig = go.Figure()
    dashes = ("solid", "dash", "dot", "dashdot")  # concepts at 1.0 overlap: the dashes keep each visible
    for i, (concept, sub) in enumerate(sweep.groupby("concept", sort=False)):
        sub = sub.sort_values("layer")
        fig.add_trace(
            go.Scatter(
                x=sub["layer"],
                y=sub["test_accuracy"],
                mode="lines+markers",
                name=concept,
                line=dict(color=PALETTE[i % len(PALETTE)], dash=dashes[i % len(dashes)]),
            )
        )
    if len(sweep):
        xs = [float(sweep["layer"].min()), float(sweep["layer"].max())]
        fig.add_trace(
            go.Scatter(
                x=xs, y=[0.5, 0.5], mode="lines", name="chance", hoverinfo="skip", line=dict(color="#888", dash="dot")
            )
        )
    style(fig, title=title, x="layer (resid_post)", y="held-out accuracy (fraction correct)")
    fig.update_yaxes(range=[0.4, 1.02])
    return fig


def dose_response_figure(table: pd.DataFrame, *, title: str = "Dose-response") -> go.Figure:
    """Success and perplexity ratio against strength (in units of ‖μ⁺ − μ⁻‖), one colour per method
    (grey: the random-direction control); solid lines steer toward the positive side, dashed lines
    toward the negative side; error bars are the table's intervals when it has them (methods are
    offset slightly along x so their bars stay apart; hover shows the true strength). Dotted grey:
    the unsteered success; dotted red: twice the unsteered perplexity."""
    _require(table, _SWEEP_COLUMNS, "dose_response_figure")
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("concept success (judge)", "perplexity / unsteered (log)"),
        horizontal_spacing=0.12,
    )
    base = table[table["method"] == "none"]
    steered = table[table["method"] != "none"]
    methods = list(dict.fromkeys(steered["method"]))
    strengths = sorted(set(steered["strength"]))
    gap = min((b - a for a, b in itertools.pairwise(strengths)), default=1.0)
    shown = set()
    for (method, toward), sub in steered.groupby(["method", "toward"], sort=False):
        sub = sub.sort_values("strength")
        offset = (methods.index(method) - (len(methods) - 1) / 2) * 0.5 * gap / max(len(methods), 1)
        x = sub["strength"] + offset
        dash = "solid" if toward == "positive" else "dash"
        label = _label(method)
        for col, key in ((1, "success"), (2, "perplexity_ratio")):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=sub[key],
                    error_y=_error(sub, key),
                    customdata=sub["strength"],
                    mode="lines+markers",
                    name=label,
                    legendgroup=method,
                    showlegend=col == 1 and method not in shown,
                    line=dict(color=_colour(method), dash=dash),
                    hovertemplate=f"{label} → {toward}<br>strength %{{customdata}}: %{{y:.3g}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        shown.add(method)
    if len(base) and len(steered):
        xs = [float(steered["strength"].min()), float(steered["strength"].max())]
        # reference lines as traces: shapes on a log axis would need log10 coordinates
        unsteered = reference_line(xs, float(base["success"].iloc[0]), name="unsteered", color="#888", dash="dot")
        fig.add_trace(unsteered, row=1, col=1)
        twice = reference_line(xs, 2.0, name="2× unsteered perplexity", color="#D55E00", dash="dot")
        fig.add_trace(twice, row=1, col=2)
    style(fig, title=title, width=1150, height=500)
    fig.update_layout(legend_title_text="solid: toward positive<br>dashed: toward negative" + _level_text(table))
    fig.update_xaxes(title_text="strength (× ‖μ⁺ − μ⁻‖)")
    fig.update_yaxes(title_text="share of completions judged positive", range=[-0.02, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="perplexity ratio", type="log", row=1, col=2)
    return fig


def frontier_figure(
    table: pd.DataFrame, *, title: str = "Bake-off: concept success vs fluency", max_ratio: Optional[float] = 2.0
) -> go.Figure:
    """Concept success (y) against perplexity ratio (x, log), one frontier per method (grey dotted:
    the random-direction control) and one panel per direction, with the intervals of both as error
    bars when the table has them. Each line starts at the unsteered point and follows increasing
    strength."""
    _require(table, _SWEEP_COLUMNS, "frontier_figure")
    if not (table["method"] == "none").any():
        raise ValueError("frontier_figure needs the unsteered row (method 'none') to start each frontier")
    directions = [t for t in ("positive", "negative") if t in set(table["toward"])]
    fig = make_subplots(
        rows=1, cols=len(directions), subplot_titles=[f"steer toward {t}" for t in directions], shared_yaxes=True
    )
    base = table[table["method"] == "none"].iloc[[0]]
    for col, t in enumerate(directions, start=1):
        for method, sub in table[(table["toward"] == t)].groupby("method", sort=False):
            sub = pd.concat([base, sub.sort_values("strength")], ignore_index=True)
            text = ["unsteered"] + [f"strength {s:g}" for s in sub["strength"].iloc[1:]]
            fig.add_trace(
                go.Scatter(
                    x=sub["perplexity_ratio"],
                    y=sub["success"],
                    error_x=_error(sub, "perplexity_ratio"),
                    error_y=_error(sub, "success"),
                    mode="lines+markers",
                    name=_label(method),
                    text=text,
                    legendgroup=method,
                    showlegend=col == 1,
                    line=dict(color=_colour(method), dash="dot" if method == CONTROL_METHOD else "solid"),
                ),
                row=1,
                col=col,
            )
        if max_ratio is not None:  # a trace, not a shape: shapes on a log axis take log10 coordinates
            fig.add_trace(
                go.Scatter(
                    x=[max_ratio, max_ratio],
                    y=[0, 1],
                    mode="lines",
                    name=f"{max_ratio:g}× perplexity",
                    legendgroup="max_ratio",
                    showlegend=col == 1,
                    hoverinfo="skip",
                    line=dict(color="#D55E00", dash="dot"),
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="perplexity ratio, steered / unsteered (log)", type="log", row=1, col=col)
    style(fig, title=title, width=560 * len(directions) + 120, height=500)
    fig.update_yaxes(title_text="share of completions judged positive", range=[-0.02, 1.02], row=1, col=1)
    if _level_text(table):
        fig.update_layout(legend_title_text=_level_text(table)[4:])
    return fig


def bakeoff_figures(result: BakeoffResult) -> dict[str, go.Figure]:
    """``{"dose_response": ..., "frontier": ...}`` for a bake-off result."""
    c = result.config
    return {
        "dose_response": dose_response_figure(result.table, title=f"Dose-response: {c.concept} at {c.site.short}"),
        "frontier": frontier_figure(
            result.table,
            title=f"Bake-off: {c.concept} at {c.site.short} ({c.n_prompts} prompts × {len(c.seeds)} seeds, "
            f"{c.max_new_tokens} tokens)",
            max_ratio=c.max_ratio,
        ),
    }


def transfer_figure(sweep: pd.DataFrame, *, title: str = "Probe transfer between data sources") -> go.Figure:
    """Held-out probe accuracy by layer, one line per (train source → test source) of a
    ``concepts.transfer.transfer_sweep`` table; solid lines stay within a source, dashed ones cross."""
    _require(sweep, ("train_on", "test_on", "layer", "test_accuracy"), "transfer_figure")
    fig = go.Figure()
    sources = list(dict.fromkeys([*sweep["train_on"], *sweep["test_on"]]))
    for (a, b), sub in sweep.groupby(["train_on", "test_on"], sort=False):
        sub = sub.sort_values("layer")
        fig.add_trace(
            go.Scatter(
                x=sub["layer"],
                y=sub["test_accuracy"],
                mode="lines+markers",
                name=f"train {a} → test {b}",
                line=dict(color=PALETTE[sources.index(b) % len(PALETTE)], dash="solid" if a == b else "dash"),
            )
        )
    if len(sweep):
        xs = [float(sweep["layer"].min()), float(sweep["layer"].max())]
        fig.add_trace(reference_line(xs, 0.5, name="chance", color="#888", dash="dot"))
    style(fig, title=title, x="layer (resid_post)", y="held-out accuracy (fraction correct)", width=860)
    fig.update_yaxes(range=[0.4, 1.02])
    return fig


def cosine_figure(table: pd.DataFrame, *, title: str = "Template vs real-text vectors") -> go.Figure:
    """Cosine by layer between two sources' mean-difference vectors and probe normals
    (``concepts.transfer.vector_cosines``)."""
    _require(table, ("layer", "mean_diff_cosine", "probe_cosine"), "cosine_figure")
    sub = table.sort_values("layer")
    fig = go.Figure()
    for i, (key, name) in enumerate(
        (("mean_diff_cosine", "mean difference μ⁺ − μ⁻"), ("probe_cosine", "probe normal w"))
    ):
        fig.add_trace(
            go.Scatter(x=sub["layer"], y=sub[key], mode="lines+markers", name=name, line=dict(color=PALETTE[i]))
        )
    style(fig, title=title, x="layer (resid_post)", y="cosine similarity")
    fig.update_yaxes(range=[-0.05, 1.02])
    return fig


def source_comparison_figure(
    tables: dict[str, pd.DataFrame], *, title: str = "Steering success by vector source"
) -> go.Figure:
    """Success against strength for the same methods fitted on different data sources, one panel per
    direction, with the tables' intervals as error bars: ``tables`` maps a source label to a sweep
    table (``steering_sweep``/``run_bakeoff``)."""
    if not tables:
        raise ValueError("source_comparison_figure needs at least one table")
    for label, t in tables.items():
        _require(t, _SWEEP_COLUMNS, f"source_comparison_figure[{label!r}]")
    directions = [d for d in ("positive", "negative") if any(d in set(t["toward"]) for t in tables.values())]
    fig = make_subplots(
        rows=1, cols=len(directions), subplot_titles=[f"steer toward {d}" for d in directions], shared_yaxes=True
    )
    dashes = ("solid", "dash", "dot", "dashdot")
    for col, d in enumerate(directions, start=1):
        for k, (label, t) in enumerate(tables.items()):
            for method, sub in t[t["toward"] == d].groupby("method", sort=False):
                sub = sub.sort_values("strength")
                name = f"{_label(method)} · {label}"
                fig.add_trace(
                    go.Scatter(
                        x=sub["strength"] + 0.15 * k,
                        y=sub["success"],
                        error_y=_error(sub, "success"),
                        customdata=sub["strength"],
                        mode="lines+markers",
                        name=name,
                        legendgroup=f"{method}{label}",
                        showlegend=col == 1,
                        line=dict(color=_colour(method), dash=dashes[k % len(dashes)]),
                        hovertemplate=f"{name}<br>strength %{{customdata}}: %{{y:.3g}}<extra></extra>",
                    ),
                    row=1,
                    col=col,
                )
            base = t[t["method"] == "none"]
            if len(base) and k == 0:
                xs = [float(t["strength"][t["method"] != "none"].min()), float(t["strength"].max())]
                fig.add_trace(
                    reference_line(
                        xs,
                        float(base["success"].iloc[0]),
                        name="unsteered",
                        color="#888",
                        dash="dot",
                        showlegend=col == 1,
                    ),
                    row=1,
                    col=col,
                )
        fig.update_xaxes(title_text="strength (× ‖μ⁺ − μ⁻‖)", row=1, col=col)
    style(fig, title=title, width=560 * len(directions) + 160, height=480)
    fig.update_yaxes(title_text="share of completions judged positive", range=[-0.02, 1.02], row=1, col=1)
    return fig


class TokenHTML:
    """An HTML fragment that Jupyter renders (``_repr_html_``); ``str()`` gives the markup."""

    def __init__(self, html: str) -> None:
        self.html = html

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html


def _shade(value: float, scale: float) -> str:
    """Blue for positive, red for negative (Okabe-Ito hues), alpha by ``|value| / scale``."""
    if not np.isfinite(value) or scale <= 0:
        return "transparent"
    a = min(1.0, abs(value) / scale)
    return f"rgba(0,114,178,{0.85 * a:.3f})" if value > 0 else f"rgba(213,94,0,{0.85 * a:.3f})"


def monitor_html(monitored, *, scale: Optional[float] = None, title: str = "") -> TokenHTML:
    """Each monitored completion (``concepts.monitor.Monitored``) as text coloured token by token by
    its projection ``m_t`` (blue: positive side, orange: negative side; the hover shows the value),
    one line per completion with its condition and mean projection. ``scale``: the |m| of full
    colour (default the largest |m| shown)."""
    items = list(monitored)
    if not items:
        raise ValueError("monitor_html needs at least one monitored completion")
    values = [abs(v) for m in items for v in m.projections if np.isfinite(v)]
    scale = float(scale) if scale is not None else (max(values) if values else 1.0)
    out = ["<div style='font-family:Helvetica,Arial,sans-serif;font-size:13px;line-height:1.9'>"]
    if title:
        out.append(f"<div style='font-weight:bold;margin-bottom:4px'>{_html.escape(title)}</div>")
    for m in items:
        spans = "".join(
            f"<span title='{v:+.2f}' style='background:{_shade(v, scale)};border-radius:3px;padding:0 1px'>"
            f"{_html.escape(t).replace(chr(10), '⏎')}</span>"
            for t, v in zip(m.tokens, m.projections)
        )
        out.append(
            f"<div><span style='color:#666'>[{_html.escape(m.condition)} · mean {m.mean_projection:+.2f}]</span> "
            f"<b>{_html.escape(m.prompt)}</b>{spans}</div>"
        )
    out.append(
        f"<div style='color:#666;font-size:11px'>colour: projection onto the concept direction, read before the "
        f"steer; full colour at |m| = {scale:.2f}</div></div>"
    )
    return TokenHTML("".join(out))


def monitor_figure(monitored, *, title: str = "Monitor: projection per generated token") -> go.Figure:
    """One line per monitored completion: projection ``m_t`` against the generated token's index,
    coloured by condition (hover: the token)."""
    items = list(monitored)
    if not items:
        raise ValueError("monitor_figure needs at least one monitored completion")
    conditions = list(dict.fromkeys(m.condition for m in items))
    fig = go.Figure()
    for m in items:
        c = conditions.index(m.condition)
        fig.add_trace(
            go.Scatter(
                x=list(range(len(m.projections))),
                y=list(m.projections),
                text=list(m.tokens),
                mode="lines",
                name=m.condition,
                legendgroup=m.condition,
                showlegend=m is next(x for x in items if x.condition == m.condition),
                opacity=0.6,
                line=dict(color=PALETTE[c % len(PALETTE)], width=1.2),
                hovertemplate="token %{x}: %{text}<br>m = %{y:.2f}<extra>" + m.condition + "</extra>",
            )
        )
    n = max(len(m.projections) for m in items)
    fig.add_trace(reference_line([0, max(n - 1, 1)], 0.0, name="between the two sides", color="#888", dash="dot"))
    style(fig, title=title, x="generated token", y="projection (h − μ₀)·v̂", width=860)
    return fig


def monitor_scatter_figure(
    table: pd.DataFrame, *, x: str = "mean_projection", y: str = "score", title: str = "Monitor vs judge"
) -> go.Figure:
    """One point per completion of a ``concepts.monitor.monitor_table``: the monitor's mean
    projection against the judge's score, coloured by condition."""
    _require(table, ("condition", x, y), "monitor_scatter_figure")
    fig = go.Figure()
    for k, (cond, sub) in enumerate(table.groupby("condition", sort=False)):
        fig.add_trace(
            go.Scatter(
                x=sub[x],
                y=sub[y],
                mode="markers",
                name=cond,
                text=sub["completion"] if "completion" in sub.columns else None,
                marker=dict(color=PALETTE[k % len(PALETTE)], size=6, opacity=0.6),
                hovertemplate="%{text}<br>m = %{x:.2f}, judge %{y:.2f}<extra>" + str(cond) + "</extra>",
            )
        )
    style(fig, title=title, x="monitor: mean projection over the completion", y="judge score (VADER compound)")
    return fig


def refusal_figure(
    rates: pd.DataFrame, *, threshold: Optional[float] = 0.2, title: str = "Refusal rate of the unsteered model"
) -> go.Figure:
    """Bars of the refusal rate per request set, one group per decoding (or condition), with the
    rates' intervals as error bars; a dotted line at ``threshold`` (the study's proceed line)."""
    _require(rates, ("requests", "refusal_rate"), "refusal_figure")
    group = "decoding" if "decoding" in rates.columns else "condition"
    fig = go.Figure()
    for k, (name, sub) in enumerate(rates.groupby(group, sort=False)):
        fig.add_trace(
            go.Bar(
                x=sub["requests"],
                y=sub["refusal_rate"],
                error_y=_error(sub, "refusal_rate"),
                name=str(name),
                marker_color=PALETTE[k % len(PALETTE)],
            )
        )
    if threshold is not None:
        sets = list(dict.fromkeys(rates["requests"]))
        fig.add_trace(
            go.Scatter(
                x=sets,
                y=[threshold] * len(sets),
                mode="lines",
                name=f"{threshold:.0%}: needed for a refusal study",
                line=dict(color="#D55E00", dash="dot"),
            )
        )
    style(fig, title=title, x="requests", y="share of completions that refuse", width=700)
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.02])
    return fig


def composition_figure(table: pd.DataFrame, *, title: str = "Steering two concepts at once") -> go.Figure:
    """Grouped bars: each condition's success for each concept (``experiments.steering_compose``
    table: ``concept``, ``condition``, ``success`` and its interval), conditions in table order."""
    _require(table, ("concept", "condition", "success"), "composition_figure")
    fig = go.Figure()
    for k, (concept, sub) in enumerate(table.groupby("concept", sort=False)):
        fig.add_trace(
            go.Bar(
                x=sub["condition"],
                y=sub["success"],
                error_y=_error(sub, "success"),
                name=f"{concept} success",
                marker_color=PALETTE[k % len(PALETTE)],
            )
        )
    style(
        fig, title=title, x="condition", y="share of completions judged on the concept's side", width=1000, height=520
    )
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(tickangle=-30)
    return fig


__all__ = [
    "TokenHTML",
    "bakeoff_figures",
    "composition_figure",
    "cosine_figure",
    "dose_response_figure",
    "frontier_figure",
    "layer_accuracy_figure",
    "method_label",
    "monitor_figure",
    "monitor_html",
    "monitor_scatter_figure",
    "refusal_figure",
    "source_comparison_figure",
    "transfer_figure",
]
