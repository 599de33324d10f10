import json

import pytest

from workbench.concepts import ConceptDataError, ConceptSet, available_concepts, load_concept, save_concept
from workbench.concepts.templates import BUILDERS, build_concept


def test_shipped_concepts_have_enough_data_and_provenance():
    names = available_concepts()
    assert {"sentiment", "language", "topic_food", "style_casual", "sentiment_real"} <= set(names)
    for name in (n for n in names if n in BUILDERS):  # the template concepts; real text: test_concepts_realtext
        data = load_concept(name)
        assert len(data.train.positive) >= 200 and len(data.train.negative) >= 200
        assert data.test is not None and len(data.test.positive) >= 50
        assert data.train.paired
        assert not set(data.train.texts) & set(data.test.texts), f"{name}: train and test overlap"
        from workbench.concepts.data import DATA_DIR

        head = json.loads((DATA_DIR / f"{name}.jsonl").read_text().splitlines()[0])
        assert head["provenance"]["source"] and head["concept"] == name


def test_templates_are_reproducible_and_distinct():
    a_train, a_test = build_concept("sentiment", 30, 10, seed=3)
    b_train, _ = build_concept("sentiment", 30, 10, seed=3)
    c_train, _ = build_concept("sentiment", 30, 10, seed=4)
    assert a_train.positive == b_train.positive and a_train.negative == b_train.negative
    assert a_train.positive != c_train.positive
    assert len(set(a_train.texts + a_test.texts)) == 80


def test_shipped_files_match_the_builder():
    for name in BUILDERS:
        train, test = build_concept(name, 200, 60, seed=0)
        shipped = load_concept(name)
        assert list(shipped.train.positive) == list(train.positive)
        assert list(shipped.test.negative) == list(test.negative)


def test_no_single_word_gives_the_side_away_except_concept_words():
    """In the sentiment pairs both sides share every word but the evaluative phrase: no word other than
    those occurs in more than 20% of one side while absent from the other."""
    import collections
    import re

    tr = load_concept("sentiment").train
    count = lambda texts: collections.Counter(w for t in texts for w in set(re.findall(r"[a-z']+", t.lower())))
    cp, cn = count(tr.positive), count(tr.negative)
    n = len(tr.positive)
    giveaways = [w for w in cp if cp[w] > 0.2 * n and cn[w] == 0] + [w for w in cn if cn[w] > 0.2 * n and cp[w] == 0]
    assert giveaways == []


def test_conceptset_rejects_bad_input_with_clear_errors():
    with pytest.raises(ConceptDataError, match="negative side is empty"):
        ConceptSet("x", ["a good day"], [])
    with pytest.raises(ConceptDataError, match="lopsided"):
        ConceptSet("x", ["a"] * 10, ["b"] * 3)
    with pytest.raises(ConceptDataError, match="max_chars"):
        ConceptSet("x", ["a" * 700], ["b"])
    with pytest.raises(ConceptDataError, match="empty or not a string"):
        ConceptSet("x", ["ok", "  "], ["b", "c"])
    with pytest.raises(ConceptDataError, match="paired"):
        ConceptSet("x", ["a", "b"], ["c"], paired=True, max_ratio=3.0)
    with pytest.raises(ConceptDataError, match="no concept named"):
        load_concept("no_such_concept")


def test_save_load_round_trip(tmp_path):
    cs = ConceptSet("mine", ["yes one", "yes two"], ["no one", "no two"], paired=True, provenance={"source": "test"})
    test = ConceptSet("mine", ["yes three"], ["no three"], paired=True, provenance={"source": "test"})
    path = save_concept(tmp_path / "mine.jsonl", cs, test)
    back = load_concept("mine", directory=tmp_path)
    assert back.train.positive == cs.positive and back.test.negative == test.negative
    assert back.train.provenance == {"source": "test"}
    unpaired = ConceptSet("solo", ["a", "b"], ["c", "d", "e"], provenance={"source": "t"})
    save_concept(tmp_path / "solo.jsonl", unpaired)
    back = load_concept("solo", directory=tmp_path)
    assert back.test is None and back.train.negative == ("c", "d", "e") and not back.train.paired
    assert path.read_text().count("\n") == 4
