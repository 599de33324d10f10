"""Patching figures: built from a real faithfulness result on a tiny model; arguments are checked."""

import plotly.graph_objects as go
import pytest
import torch

from workbench.patching.faithfulness import measure_faithfulness, pearson
from workbench.patching.tasks import make_metric, random_task
from workbench.plots.patching import grid_heatmap, grids_figure, scatter_figure


@pytest.fixture()
def result(tiny):
    task = random_task(tiny.cfg.d_vocab, n=2, seq_len=4)
    return measure_faithfulness(tiny, task, make_metric(tiny, task), ["resid_pre", "mlp_out"], progress=False)


def test_scatter_has_one_trace_per_method_and_the_diagonal(result):
    fig = scatter_figure(result, "mlp_out")
    assert isinstance(fig, go.Figure) and len(fig.data) == 4
    r = pearson(result.estimates["atp"]["mlp_out"], result.act["mlp_out"])
    assert fig.data[0].name == f"atp (r = {r:.3f})"
    assert list(fig.data[0].x) == pytest.approx(result.act["mlp_out"].flatten().tolist())


def test_grids(result):
    heat = grid_heatmap(result.act["resid_pre"], tokens=["a", "b", "c", "d"], title="t")
    assert heat.data[0].z.shape == tuple(result.act["resid_pre"].shape)
    assert list(heat.data[0].x) == ["0:'a'", "1:'b'", "2:'c'", "3:'d'"]
    side = grids_figure(result, "resid_pre")
    assert len(side.data) == 1 + len(result.estimates)


def test_figures_check_arguments(result):
    with pytest.raises(ValueError, match="no 'attn_out' grid"):
        scatter_figure(result, "attn_out")
    with pytest.raises(ValueError, match="2-d grid"):
        grid_heatmap(torch.zeros(2, 3, 4))
