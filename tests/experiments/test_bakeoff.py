"""The bake-off runner writes its tables, summary and figures through workbench.artifacts."""

import json

import pytest
from concept_helpers import bakeoff_result

from workbench.artifacts import load_json, load_table
from workbench.experiments.bakeoff import SUMMARY_KIND, save_bakeoff


def test_save_bakeoff_writes_tables_summary_and_figures(tmp_path):
    result = bakeoff_result()
    paths = save_bakeoff(result, tmp_path, static=False)
    assert set(paths) == {"table", "completions", "summary", "dose_response", "frontier"}
    table = load_table(paths["table"], required_columns=("method", "success", "perplexity_ratio"))
    assert list(table["method"]) == list(result.table["method"])
    assert table["perplexity_ratio"].tolist() == pytest.approx(result.table["perplexity_ratio"].tolist(), rel=1e-7)
    doc = load_json(paths["summary"], kind=SUMMARY_KIND, required=("config", "winner", "summary"))
    assert doc["winner"] == result.winner and doc["config"]["grid"] == list(result.config.grid)
    assert [r["method"] for r in doc["summary"]] == list(result.summary["method"])
    json.loads((tmp_path / "concepts_bakeoff_sentiment_summary.json").read_text())  # strict JSON (NaN → null)
    assert (tmp_path / "concepts_bakeoff_sentiment_frontier.html").is_file()
    with pytest.raises(TypeError, match="BakeoffResult"):
        save_bakeoff(result.table, tmp_path)
