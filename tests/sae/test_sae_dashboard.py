"""Feature dashboards: plotly figures, highlighted contexts, pages and index written offline."""

import plotly.graph_objects as go
import pytest
import torch
from sae_helpers import tiny_sae

from workbench.sae.dashboard import activation_histogram_figure, contexts_html, logit_lens_figure, write_dashboards
from workbench.sae.scores import (
    FeatureScores,
    collect_top_examples,
    feature_logit_lens,
    load_scores,
    output_scores,
    save_scores,
    score_table,
)


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


def test_figures(scored):
    sae, fs = scored
    f = int(fs.examples.fire_count.argmax())
    lens_fig = logit_lens_figure(fs.lens, f, n_top=5, n_bottom=3)
    assert isinstance(lens_fig, go.Figure) and len(lens_fig.data[0].y) == 8
    hist = activation_histogram_figure(fs.examples, f)
    assert isinstance(hist, go.Figure) and sum(hist.data[0].y) == int(fs.examples.fire_count[f])


def test_contexts_mark_the_max_token(scored):
    sae, fs = scored
    f = int(fs.examples.fire_count.argmax())
    page = contexts_html(fs.examples, f, n=3)
    assert page.count('class="ctx"') == min(3, int(fs.examples.n_examples[f]))
    assert page.count('class="max"') == page.count('class="ctx"')
    tok = int(fs.examples.token[f, 0])
    assert (
        f'class="max" style="background: rgba(230,120,0,1.00)" title="{float(fs.examples.values[f, 0]):.3g}">&lt;{tok}&gt;'
        in page
    )


def test_write_dashboards_and_round_trip(scored, tiny, tmp_path):
    sae, fs = scored
    back = load_scores(save_scores(fs, tmp_path / "scores"))
    assert back.table["output_score"].tolist() == pytest.approx(fs.table["output_score"].tolist())
    assert back.table["top_token_ids"].tolist() == fs.table["top_token_ids"].tolist()
    paths = write_dashboards(tiny, sae, back, [0, 3], tmp_path / "dash", name="tiny")
    assert [p.name for p in paths] == ["feature_0.html", "feature_3.html"]
    text = paths[1].read_text()
    assert "Feature 3" in text and "plotly.min.js" in text and "Top-activating contexts" in text
    assert (tmp_path / "dash" / "plotly.min.js").stat().st_size > 1_000_000
    assert 'href="feature_3.html"' in (tmp_path / "dash" / "index.html").read_text()
    with pytest.raises(IndexError, match="0..47"):
        write_dashboards(tiny, sae, back, [48], tmp_path / "dash")
