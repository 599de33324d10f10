import pytest

from workbench.concepts import ConceptDataError
from workbench.concepts.generate import ConceptDescription, clean_generation, generate_concept_set


def test_clean_generation():
    assert clean_generation('  "The park was lovely today."\nMore text') == "The park was lovely today."
    assert clean_generation("1. A short sentence here.") == "A short sentence here."
    assert clean_generation("Sure! Here is a sentence:") is None
    assert clean_generation("text <|im_end|>") is None
    assert clean_generation("\n\n") is None


def test_description_parsing():
    d = ConceptDescription.parse("sounds happy vs sounds sad", name="mood")
    assert (d.name, d.positive, d.negative) == ("mood", "sounds happy", "sounds sad")
    with pytest.raises(ValueError, match="vs"):
        ConceptDescription.parse("just happy")


@pytest.mark.embedded
def test_generate_concept_set_is_reproducible_and_clean(embedded, tmp_path):
    kw = dict(n=2, seed=1, max_new_tokens=16, batch_size=2, max_rounds=4, progress=False)
    a = generate_concept_set(
        embedded, "sounds cheerful and happy vs sounds gloomy and sad", path=tmp_path / "g.jsonl", **kw
    )
    b = generate_concept_set(embedded, "sounds cheerful and happy vs sounds gloomy and sad", **kw)
    assert a.positive == b.positive and a.negative == b.negative
    assert a.paired and len(a.positive) == 2
    assert len({t.lower() for t in a.texts}) == 4
    assert all("<|" not in t and 15 <= len(t) <= 220 for t in a.texts)
    assert a.provenance["seed"] == 1 and (tmp_path / "g.jsonl").exists()
    with pytest.raises(ConceptDataError, match="generated only"):
        generate_concept_set(
            embedded, "is happy vs is sad", n=3, max_rounds=1, batch_size=1, max_new_tokens=2, progress=False
        )
    with pytest.raises(ValueError, match="n must be"):
        generate_concept_set(embedded, "is happy vs is sad", n=0)
