"""The bake-off runner writes its tables, summary, report and figures through workbench.artifacts."""

import json

import pytest
from concept_helpers import bakeoff_result

from workbench.artifacts import load_json, load_table
from workbench.concepts.evaluate import GenerationTiming
from workbench.experiments.bakeoff import SUMMARY_KIND, SUMMARY_VERSION, report_markdown, save_bakeoff


def test_save_bakeoff_writes_tables_summary_report_and_figures(tmp_path):
    result = bakeoff_result(control_draws=2)
    result.timing = GenerationTiming(10.0, 2, 96, 1920, 1800)
    hf = {"batch_size": 96, "max_new_tokens": 20, "seconds": 8.0, "tokens_per_second": 240.0}
    paths = save_bakeoff(result, tmp_path, static=False, hf_reference=hf)
    assert set(paths) == {"table", "completions", "summary", "report", "dose_response", "frontier"}
    table = load_table(paths["table"], required_columns=("method", "success", "success_low", "perplexity_ratio"))
    assert list(table["method"]) == list(result.table["method"])
    assert table["perplexity_ratio"].tolist() == pytest.approx(result.table["perplexity_ratio"].tolist(), rel=1e-7)
    assert table["success_high"].tolist() == pytest.approx(result.table["success_high"].tolist(), rel=1e-7)
    doc = load_json(
        paths["summary"],
        kind=SUMMARY_KIND,
        versions=(SUMMARY_VERSION,),
        required=("config", "winner", "winners", "summary"),
    )
    assert doc["winner"] == result.winner and doc["config"]["grid"] == list(result.config.grid)
    assert doc["generation"]["tokens_per_second"] == pytest.approx(192.0)
    assert doc["hf_generate_reference"]["tokens_per_second"] == 240.0
    assert [r["method"] for r in doc["summary"]] == list(result.summary["method"])
    json.loads((tmp_path / "concepts_bakeoff_sentiment_summary.json").read_text())  # strict JSON (NaN → null)
    assert (tmp_path / "concepts_bakeoff_sentiment_frontier.html").is_file()
    report = (tmp_path / "concepts_bakeoff_sentiment_report.md").read_text()
    assert "random direction (control)" in report and "192 tokens/s" in report and "240 tokens/s" in report
    row = result.summary.iloc[0]
    assert f"{row['positive_success']:.2f} [{row['positive_success_low']:.2f}, {row['positive_success_high']:.2f}]" in (
        report_markdown(result)
    )
    no_comps = save_bakeoff(result, tmp_path / "lean", static=False, completions=False)
    assert "completions" not in no_comps
    with pytest.raises(TypeError, match="BakeoffResult"):
        save_bakeoff(result.table, tmp_path)
