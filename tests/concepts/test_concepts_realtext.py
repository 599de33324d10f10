"""The real-text sentiment set: clearly rated sentences only, split by source document, sources drawn
in turn; the shipped file records its provenance and keeps documents on one side of the split."""

import json

import pytest

from workbench.concepts import load_concept
from workbench.concepts.data import DATA_DIR
from workbench.concepts.realtext import REAL_CONCEPT, RealSentimentConfig, build_real_sentiment, rated_sentences
from workbench.sae.corpus import VADER_FILES, is_heldout


def _fake_sdist(folder):
    """Four ground-truth files in the sdist's format: ``id<TAB>mean rating<TAB>sentence``."""
    folder.mkdir(parents=True)
    for k, (name, filename) in enumerate(VADER_FILES.items()):
        lines = []
        for i in range(60):
            rating = [2.5, -2.5, 0.3, 1.6, -1.6][i % 5]
            sid = f"{i // 3}_{i % 3}" if name in ("amazon", "nyt") else str(i)
            lines.append(f"{sid}\t{rating}\t{name} sentence number {i} with &amp; entity, source {k}.")
        lines.append("999\t3.0\tshort")  # too short
        lines.append(f"998\t3.0\t{name} sentence number 0 with &amp; entity, source {k}.")  # a duplicate
        (folder / filename).write_text("\n".join(lines) + "\n")
    (folder / "DONE").write_text("fake\n")
    return folder


def test_builder_keeps_clear_ratings_splits_by_document_and_draws_sources_in_turn(tmp_path):
    _fake_sdist(tmp_path / "vader-3.3.2")
    cfg = RealSentimentConfig(n_train=12, n_test=4, test_fraction=0.4)
    data, table = build_real_sentiment(cfg, root=tmp_path)
    assert (table["rating"].abs() >= 1.5).all() and "&amp;" not in "".join(table["text"])
    assert not table["text"].str.contains("number 0 with").any()  # rated twice: dropped, not guessed
    assert table["text"].str.len().min() >= cfg.min_chars
    for split in ("train", "test"):
        docs = set(table.loc[table["split"] == split, "doc_id"])
        assert all(is_heldout(d, 0.4) == (split == "test") for d in docs)
    assert not set(table.loc[table["split"] == "train", "doc_id"]) & set(table.loc[table["split"] == "test", "doc_id"])
    per_source = table[table["split"] == "train"].groupby(["label", "source"]).size()
    assert per_source.min() == per_source.max() == 3  # 12 per side, four sources in turn
    assert len(data.train.positive) == len(data.train.negative) == 12 and not data.train.paired
    assert data.train.provenance["config"]["threshold"] == 1.5
    assert set(rated_sentences(tmp_path / "vader-3.3.2")["source"]) == set(VADER_FILES)
    with pytest.raises(ValueError, match="threshold"):
        RealSentimentConfig(threshold=5.0)


def test_shipped_real_text_file():
    data = load_concept(REAL_CONCEPT)
    assert len(data.train.positive) == len(data.train.negative) >= 300 and len(data.test.positive) >= 100
    lines = (DATA_DIR / f"{REAL_CONCEPT}.jsonl").read_text().splitlines()
    head, rows = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    assert "vaderSentiment" in head["provenance"]["source"] and "by source document" in head["provenance"]["split"]
    train_docs = {r["doc"] for r in rows if r["split"] == "train"}
    test_docs = {r["doc"] for r in rows if r["split"] == "test"}
    assert train_docs and test_docs and not train_docs & test_docs
    assert all((r["rating"] >= 1.5) == (r["label"] == 1) and abs(r["rating"]) >= 1.5 for r in rows)
    assert {r["source"] for r in rows} == set(VADER_FILES)
