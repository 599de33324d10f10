"""SAE figures (replication and dashboard panels) and the dashboard's HTML builders."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
from sae_helpers import tiny_sae

from workbench.plots.dashboard import contexts_html, dashboard_index_html, feature_dashboard_html
from workbench.plots.sae import (
    activation_histogram_figure,
    layer_trend_figure,
    logit_lens_figure,
    score_scatter_figure,
    steering_figure,
)
from workbench.sae.feature_lens import feature_logit_lens
from workbench.sae.scores import output_scores
from workbench.sae.tables import FeatureScores, score_table
from workbench.sae.top_examples import collect_top_examples


@pytest.fixture()
def scored(tiny):
    sae = tiny_sae("blocks.1.hook_resid_post")
    lens = feature_logit_lens(tiny, sae, k=5)
    out = output_scores(tiny, sae, lens, prompt=torch.tensor([3, 7, 11, 2]), progress=False)
    ex = collect_top_examples(
        tiny,
        sae,
        torch.randint(0, 50, (8, 16), generator=torch.Generator().manual_seed(0)),
        k=6,
        window=(4, 2),
        progress=False,
    )
    return sae, FeatureScores(score_table(tiny, sae, lens=lens, output=out, examples=ex), lens, ex)


def _table(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "feature": range(n),
            "input_score": rng.uniform(0, 1, n),
            "output_score": rng.uniform(0, 0.2, n),
            "n_examples": 50,
            "top_tokens": [["a"]] * n,
        }
    )


def test_replication_figures():
    tables = {"L6": _table(seed=1), "L24": _table(seed=2)}
    fig = score_scatter_figure(tables)
    assert isinstance(fig, go.Figure) and len(fig.data) == 2 and len(fig.data[0].x) == 200
    fig = layer_trend_figure({6: tables["L6"], 24: tables["L24"]})
    assert len(fig.data) == 2
    assert fig.data[0].y[0] == pytest.approx(tables["L6"]["input_score"].mean())
    summary = pd.DataFrame(
        {
            "layer": ["L6", "L6", "L24"],
            "group": ["b", "a", "a"],
            "strength": [4.0, 4.0, 4.0],
            "success": [0.5, 0.2, 0.1],
            "success_sem": [0.1, 0.1, np.nan],
            "perplexity_median": [5.0, 6.0, 7.0],
        }
    )
    fig = steering_figure(summary, groups=["a", "b"])
    assert [t.name for t in fig.data if t.showlegend] == ["a", "b"]  # the given order, panel L6 first
    with pytest.raises(ValueError, match="no score tables"):
        score_scatter_figure({})


def test_dashboard_figures(scored, tiny):
    _, fs = scored
    f = int(fs.examples.fire_count.argmax())
    lens_fig = logit_lens_figure(fs.lens, f, tiny, n_top=5, n_bottom=3)
    assert isinstance(lens_fig, go.Figure) and len(lens_fig.data[0].y) == 8
    assert list(lens_fig.data[0].x[:5]) == pytest.approx(fs.lens.top_logits[f, :5].tolist())
    hist = activation_histogram_figure(fs.examples, f)
    assert isinstance(hist, go.Figure) and sum(hist.data[0].y) == int(fs.examples.fire_count[f])
    with pytest.raises(IndexError, match=r"0..47"):
        logit_lens_figure(fs.lens, 48)


def test_contexts_mark_the_max_token(scored):
    _, fs = scored
    f = int(fs.examples.fire_count.argmax())
    page = contexts_html(fs.examples, f, n=3)
    assert page.count('class="ctx"') == min(3, int(fs.examples.n_examples[f]))
    assert page.count('class="max"') == page.count('class="ctx"')
    tok = int(fs.examples.token[f, 0])  # no tokenizer: the id itself (workbench.tokens.token_strings)
    assert (
        f'class="max" style="background: rgba(230,120,0,1.00)" title="{float(fs.examples.values[f, 0]):.3g}">{tok}<'
        in page
    )


def test_feature_page_and_index(scored, tiny):
    sae, fs = scored
    page = feature_dashboard_html(tiny, sae, fs, 3, name="tiny")
    assert "Feature 3" in page and 'src="plotly.min.js"' in page and "Top-activating contexts" in page
    index = dashboard_index_html(tiny, sae, fs, [0, 3], name="tiny")
    assert 'href="feature_0.html"' in index and 'href="feature_3.html"' in index and "2 feature dashboards" in index
    with pytest.raises(ValueError, match="top examples"):
        feature_dashboard_html(tiny, sae, FeatureScores(fs.table, fs.lens, None), 3)
