"""Circuit figures: built from real results on tiny models; the plotted numbers are the results'."""

import numpy as np
import plotly.graph_objects as go
import pytest
from architectures import family_model, random_tokens

from workbench.circuits import dla
from workbench.plots.circuits import accumulated_figure, dla_heatmap


@pytest.fixture(scope="module")
def attr():
    model = family_model("gpt2")
    return dla(model, random_tokens(model, batch=3), 1, 2)


def test_dla_heatmap_is_the_head_grid_centred_at_zero(attr):
    fig = dla_heatmap(attr)
    assert isinstance(fig, go.Figure)
    h = fig.data[0]
    np.testing.assert_allclose(np.asarray(h.z), attr.head_grid().numpy())
    assert h.zmid == 0 and h.zmin == -h.zmax


def test_accumulated_figure_has_frozen_and_lens_lines(attr):
    fig = accumulated_figure(attr)
    assert len(fig.data) == 3
    np.testing.assert_allclose(fig.data[0].y, attr.accumulated.mean(1).numpy())
    np.testing.assert_allclose(fig.data[1].y, attr.lens.mean(1).numpy())
    assert list(fig.layout.xaxis.ticktext)[-1] == "final"


def test_figures_check_their_argument():
    with pytest.raises(TypeError, match="LogitAttribution"):
        dla_heatmap("nope")
