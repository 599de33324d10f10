"""Concept figures: built from a sweep table; the traces carry the table's numbers and its intervals
as error bars; labels and colours come from the method registry; the control is drawn in grey."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from concept_helpers import bakeoff_result, sweep_table

from workbench.concepts import method_class
from workbench.plots.concepts import (
    CONTROL_COLOUR,
    bakeoff_figures,
    dose_response_figure,
    frontier_figure,
    layer_accuracy_figure,
    method_label,
)


def _bars(err, y):
    """Error bars back as absolute bounds."""
    return list(np.asarray(y) - np.asarray(err.arrayminus)), list(np.asarray(y) + np.asarray(err.array))


def test_dose_response_traces_are_the_table_with_its_intervals():
    table = sweep_table(control_draws=2)
    fig = dose_response_figure(table)
    assert isinstance(fig, go.Figure)
    for method in ("mean_diff", "ace"):
        for toward in ("positive", "negative"):
            sub = table[(table["method"] == method) & (table["toward"] == toward)].sort_values("strength")
            dash = "solid" if toward == "positive" else "dash"
            traces = [t for t in fig.data if t.name == method_class(method).label and t.line.dash == dash]
            assert [list(t.y) for t in traces] == [list(sub["success"]), list(sub["perplexity_ratio"])]
            assert list(traces[0].customdata) == list(sub["strength"])  # x is offset, hover keeps the strength
            lo, hi = _bars(traces[0].error_y, traces[0].y)
            assert lo == pytest.approx(list(sub["success_low"])) and hi == pytest.approx(list(sub["success_high"]))
            lo, hi = _bars(traces[1].error_y, traces[1].y)
            assert lo == pytest.approx(list(sub["perplexity_ratio_low"]))
    control = [t for t in fig.data if t.legendgroup == "random"]
    assert len(control) == 4 and all(t.line.color == CONTROL_COLOUR for t in control)
    ref = [t for t in fig.data if t.name == "unsteered"]
    base = float(table.loc[table["method"] == "none", "success"].iloc[0])
    assert len(ref) == 1 and list(ref[0].y) == [base, base]


def test_frontier_starts_at_the_unsteered_point_with_error_bars_on_both_axes():
    table = sweep_table()
    fig = frontier_figure(table, max_ratio=2.0)
    line = next(t for t in fig.data if t.name == "ACE (affine)")
    sub = table[(table["method"] == "ace") & (table["toward"] == "positive")].sort_values("strength")
    assert list(line.x) == [1.0, *sub["perplexity_ratio"]] and list(line.y)[1:] == list(sub["success"])
    lo, hi = _bars(line.error_x, line.x)
    assert hi[1:] == pytest.approx(list(sub["perplexity_ratio_high"]))
    lo, hi = _bars(line.error_y, line.y)
    assert lo[1:] == pytest.approx(list(sub["success_low"]))
    with pytest.raises(ValueError, match="unsteered row"):
        frontier_figure(table[table["method"] != "none"])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['success'\]"):
        dose_response_figure(table.drop(columns="success"))


def test_a_table_without_intervals_draws_without_error_bars():
    table = sweep_table().drop(columns=[c for c in sweep_table().columns if c.endswith(("_low", "_high"))])
    fig = frontier_figure(table)
    assert all(t.error_y.array is None for t in fig.data)


def test_bakeoff_figures_and_layer_accuracy():
    figs = bakeoff_figures(bakeoff_result())
    assert set(figs) == {"dose_response", "frontier"} and "resid_post.8" in figs["frontier"].layout.title.text
    sweep = pd.DataFrame({"concept": ["a", "a", "b", "b"], "layer": [0, 2, 0, 2], "test_accuracy": [0.5, 0.9, 0.6, 1]})
    fig = layer_accuracy_figure(sweep)
    assert [list(t.y) for t in fig.data[:2]] == [[0.5, 0.9], [0.6, 1.0]]
    with pytest.raises(TypeError, match="DataFrame"):
        layer_accuracy_figure({"layer": [0]})


def test_labels_come_from_the_registry():
    assert method_label("logistic") == method_class("logistic").label
    assert method_label("not_registered") == "not_registered"


def test_transfer_cosine_and_source_comparison_figures():
    from workbench.plots.concepts import cosine_figure, source_comparison_figure, transfer_figure

    sweep = pd.DataFrame(
        {
            "train_on": ["t", "t", "r", "r"] * 2,
            "test_on": ["t", "r", "r", "t"] * 2,
            "layer": [0] * 4 + [2] * 4,
            "test_accuracy": [1.0, 0.6, 0.8, 0.55, 1.0, 0.7, 0.85, 0.6],
        }
    )
    fig = transfer_figure(sweep)
    cross = next(t for t in fig.data if t.name == "train t → test r")
    assert list(cross.y) == [0.6, 0.7] and cross.line.dash == "dash"
    assert next(t for t in fig.data if t.name == "train r → test r").line.dash == "solid"
    cos = pd.DataFrame({"layer": [2, 0], "mean_diff_cosine": [0.3, 0.1], "probe_cosine": [0.2, 0.4]})
    assert list(cosine_figure(cos).data[0].y) == [0.1, 0.3]  # sorted by layer
    a, b = sweep_table(), sweep_table(seed=1)
    fig = source_comparison_figure({"template": a, "real": b})
    line = next(t for t in fig.data if t.name == "Mean difference (CAA) · real" and t.xaxis == "x")
    sub = b[(b["method"] == "mean_diff") & (b["toward"] == "positive")].sort_values("strength")
    assert list(line.y) == list(sub["success"]) and list(line.customdata) == list(sub["strength"])
    with pytest.raises(ValueError, match="at least one"):
        source_comparison_figure({})


def test_monitor_html_and_figures():
    from workbench.concepts.monitor import Monitored, monitor_table
    from workbench.plots.concepts import monitor_figure, monitor_html, monitor_scatter_figure

    items = [
        Monitored("unsteered", "Hi <b>", " a\\nb", (" a", "\n", "b"), (1.0, -2.0, 0.5)),
        Monitored("up", "Hi <b>", " c", (" c",), (4.0,)),
    ]
    html = monitor_html(items)
    assert html._repr_html_() == str(html) and "&lt;b&gt;" in str(html) and "⏎" in str(html)
    assert "title='-2.00'" in str(html) and "rgba(213,94,0,0.425)" in str(html)  # |−2| / 4 of full orange
    fig = monitor_figure(items)
    assert [list(t.y) for t in fig.data[:2]] == [[1.0, -2.0, 0.5], [4.0]]
    table = monitor_table(items).assign(score=[0.1, 0.9])
    scatter = monitor_scatter_figure(table)
    assert [list(t.x) for t in scatter.data] == [[pytest.approx(-0.5 / 3)], [4.0]]
    with pytest.raises(ValueError, match="at least one"):
        monitor_html([])
