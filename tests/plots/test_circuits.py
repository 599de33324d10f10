"""Circuit figures: built from real results on tiny models; the plotted numbers are the results'."""

import numpy as np
import plotly.graph_objects as go
import pytest
from architectures import family_model, random_tokens

from workbench.circuits import dla
from workbench.plots.circuits import (
    accumulated_figure,
    attention_figure,
    circuit_figure,
    dla_heatmap,
    faithfulness_figure,
    head_scores_figure,
    path_matrix_figure,
    path_patching_heatmap,
)


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


def test_attention_figure_has_one_panel_per_head_with_tokens_on_both_axes():
    from workbench.circuits.heads import attention_patterns

    model = family_model("llama")
    tokens = random_tokens(model, batch=2, seq_len=6)
    p = attention_patterns(model, tokens, [(0, 1), (1, 0), (1, 3), (0, 0)])
    for interactive in (True, False):
        fig = attention_figure(p, prompt=1, cols=3, interactive=interactive)
        assert len(fig.data) == 4
        np.testing.assert_allclose(np.asarray(fig.data[2].z), p.of(1, 3)[1].numpy())
        assert list(fig.data[0].x) == list(fig.data[0].y) and len(fig.data[0].x) == 6
    with pytest.raises(ValueError):
        attention_figure(p, prompt=2)
    with pytest.raises(TypeError):
        attention_figure(p, prompt=True)


def test_head_scores_figure_has_one_map_per_kind():
    from workbench.circuits.heads import induction_scores

    s = induction_scores(family_model("gpt2"), n_prompts=2, half_len=6)
    fig = head_scores_figure(s)
    assert len(fig.data) == 3
    np.testing.assert_allclose(np.asarray(fig.data[2].z), s.scores["induction"].numpy())


def test_path_patching_figures_show_the_values():
    from workbench.circuits.path_patching import path_patch, path_patch_matrix
    from workbench.patching.tasks import make_metric, random_task

    model = family_model("llama")
    task = random_task(model.cfg.d_vocab, n=2, seq_len=6)
    metric = make_metric(model, task)
    res = path_patch(model, task.clean, task.corrupted, metric, ["L0H0", "L1H2"])
    fig = path_patching_heatmap(res)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z[0, 0] == pytest.approx(float(res.values[0])) and np.isnan(z[0, 1])
    m = path_patch_matrix(model, task.clean, task.corrupted, metric, ["L0H0", "MLP0"], ["L1H0.q", "logits"])
    fig = path_matrix_figure(m)
    assert list(fig.data[0].y) == ["L0H0", "MLP0"] and list(fig.data[0].x) == ["L1H0.q", "logits"]
    np.testing.assert_allclose(np.asarray(fig.data[0].z, dtype=float), m.values.numpy())


def test_circuit_and_faithfulness_figures():
    from workbench.circuits.edges import edge_scores
    from workbench.circuits.faithfulness import faithfulness_curve
    from workbench.patching.tasks import make_metric, random_task

    model = family_model("llama")
    task = random_task(model.cfg.d_vocab, n=2, seq_len=6)
    metric = make_metric(model, task)
    scores = edge_scores(model, task.clean, task.corrupted, metric)
    for interactive in (True, False):
        fig = circuit_figure(scores, k=7, interactive=interactive)
        assert len(fig.data) == 8  # one line per edge and the nodes
    top = scores.ranked(1)[0]
    assert fig.data[0].line.width == pytest.approx(6.5)
    assert (fig.data[0].line.color == "#0072B2") == (top[2] > 0)
    curve = faithfulness_curve(model, task.clean, task.corrupted, metric, [scores], [0, 2, 5], random_seeds=2)
    fig = faithfulness_figure(curve)
    eap = next(t for t in fig.data if t.name == "eap")
    assert list(eap.x) == [2, 5]
    np.testing.assert_allclose(eap.y, curve.curves["eap"].numpy()[1:])
    with pytest.raises(TypeError):
        circuit_figure(scores, k=True)
