"""Writing feature dashboards offline: pages, index and one plotly.js, from saved scores."""

import pytest
import torch
from sae_helpers import tiny_sae

from workbench.experiments.sae_dashboard import write_dashboards
from workbench.sae.feature_lens import feature_logit_lens
from workbench.sae.scores import output_scores
from workbench.sae.tables import FeatureScores, has_saved_scores, load_scores, save_scores, score_table
from workbench.sae.top_examples import collect_top_examples


def test_write_dashboards_from_saved_scores(tiny, tmp_path):
    sae = tiny_sae("blocks.1.hook_resid_post")
    lens = feature_logit_lens(tiny, sae, k=5)
    out = output_scores(tiny, sae, lens, prompt=torch.tensor([3, 7, 11, 2]), progress=False)
    tokens = torch.randint(0, 50, (8, 16), generator=torch.Generator().manual_seed(0))
    ex = collect_top_examples(tiny, sae, tokens, k=6, window=(4, 2), progress=False)
    fs = FeatureScores(score_table(tiny, sae, lens=lens, output=out, examples=ex), lens, ex)
    folder = save_scores(fs, tmp_path / "scores")
    assert has_saved_scores(folder)
    back = load_scores(folder)
    assert back.table["output_score"].tolist() == pytest.approx(fs.table["output_score"].tolist())
    assert back.table["top_token_ids"].tolist() == fs.table["top_token_ids"].tolist()
    assert back.table["top_tokens"].tolist() == fs.table["top_tokens"].tolist()
    paths = write_dashboards(tiny, sae, back, [0, 3], tmp_path / "dash", name="tiny")
    assert [p.name for p in paths] == ["feature_0.html", "feature_3.html"]
    text = paths[1].read_text()
    assert "Feature 3" in text and "plotly.min.js" in text and "Top-activating contexts" in text
    assert (tmp_path / "dash" / "plotly.min.js").stat().st_size > 1_000_000
    assert 'href="feature_3.html"' in (tmp_path / "dash" / "index.html").read_text()
    with pytest.raises(IndexError, match=r"0..47"):
        write_dashboards(tiny, sae, back, [48], tmp_path / "dash2")
    assert not (tmp_path / "dash2").exists()  # nothing written when a feature is bad
