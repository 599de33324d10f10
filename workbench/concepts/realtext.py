"""Real, human-rated text for the sentiment concept, held out by source document.

The ``vaderSentiment`` sdist (fetched and cached by ``workbench.sae.corpus.fetch_vader``) ships the
four ground-truth sets of Hutto & Gilbert (2014): tweets, movie-review snippets (Pang & Lee), New York
Times editorial snippets and Amazon review snippets, each sentence with the *mean rating of ~10 human
raters* on a −4 … +4 scale. The real-text sentiment set keeps the clearly rated ones:

- positive: mean rating ≥ ``threshold``, negative: ≤ −``threshold`` (default 1.5); ``min_chars`` …
  ``max_chars`` characters; HTML entities unescaped; exact duplicates dropped;
- **split by source document**: a sentence's document is its review / editorial (ids ``R_S`` grouped
  by ``R``) or a block of ``group_size`` consecutive lines (tweets, movie snippets), exactly as the
  SAE corpus groups them (``corpus.vader_documents``); a document is held out iff
  ``corpus.is_heldout(doc_id, test_fraction)`` (a hash of its id), so no document has sentences on
  both sides of the split;
- per split and side, ``n_train`` / ``n_test`` sentences drawn round-robin over the four sources
  (seeded), so every source is represented as far as it has sentences.

The labels come from people, not from VADER's lexicon (the judge of the steering bake-off); the
provenance line of the written file records all of the above and the counts per source.
"""

import html
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Union

import pandas as pd

from ..artifacts import save_text
from ..paths import cache_dir
from ..validation import check_fields
from .data import DATA_DIR, ConceptData, ConceptSet

REAL_CONCEPT = "sentiment_real"


@dataclass(frozen=True)
class RealSentimentConfig:
    """How the real-text sentiment set is selected. Every field enters the provenance."""

    threshold: float = 1.5  # |mean human rating| (−4 … +4) a sentence needs to count as clearly rated
    min_chars: int = 20  # shorter sentences carry too little text to read a sentiment from
    max_chars: int = 300  # longer ones are multi-sentence rants, slow to extract
    test_fraction: float = 0.3  # share of source documents held out
    group_size: int = 8  # plain-id lines per document (tweets, movie snippets), as the SAE corpus
    n_train: int = 400  # sentences per side in the training split
    n_test: int = 150  # sentences per side in the held-out split
    seed: int = 0  # the round-robin draw
    vader_version: str = "3.3.2"  # the pinned vaderSentiment sdist

    def __post_init__(self) -> None:
        check_fields(
            self,
            threshold=dict(kind="float", min=0.0, max=4.0, min_open=True),
            min_chars=dict(kind="int", min=1),
            max_chars=dict(kind="int", min=self.min_chars),
            test_fraction=dict(kind="float", min=0.0, max=1.0, min_open=True, max_open=True),
            group_size=dict(kind="int", min=1),
            n_train=dict(kind="int", min=1),
            n_test=dict(kind="int", min=1),
            seed=dict(kind="int", min=0),
        )


def rated_sentences(folder: Union[str, Path], group_size: int = 8) -> pd.DataFrame:
    """Every sentence of the four ground-truth files: ``source``, ``sentence_id``, ``doc_id``,
    ``rating`` (mean human rating), ``text``; document ids as ``corpus.vader_documents`` builds them."""
    from ..sae.corpus import VADER_FILES

    rows = []
    for name, filename in VADER_FILES.items():
        path = Path(folder) / filename
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; fetch the sdist with workbench.sae.corpus.fetch_vader")
        row = 0
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.strip().split("\t")
            if len(parts) < 3 or not parts[2].strip():
                continue
            sid, text = parts[0], html.unescape("\t".join(parts[2:]).strip())
            key = sid.split("_")[0] if "_" in sid else str(row // group_size)
            row += 1
            rows.append(
                {
                    "source": name,
                    "sentence_id": sid,
                    "doc_id": f"vader/{name}/{key}",
                    "rating": float(parts[1]),
                    "text": " ".join(text.split()),
                }
            )
    return pd.DataFrame(rows)


def select_sentences(sentences: pd.DataFrame, config: RealSentimentConfig) -> pd.DataFrame:
    """The clearly rated, length-filtered, de-duplicated sentences with ``label`` (1/0) and ``split``."""
    from ..sae.corpus import is_heldout

    s = sentences[sentences["text"].str.len().between(config.min_chars, config.max_chars)]
    s = s[(s["rating"] >= config.threshold) | (s["rating"] <= -config.threshold)]
    s = s.drop_duplicates("text", keep=False)  # a text rated twice is dropped, not guessed
    s = s.assign(
        label=(s["rating"] > 0).astype(int),
        split=["test" if is_heldout(d, config.test_fraction) else "train" for d in s["doc_id"]],
    )
    return s.reset_index(drop=True)


def _round_robin(part: pd.DataFrame, n: int, rng: random.Random) -> pd.DataFrame:
    """Up to ``n`` rows, taking one from each source in turn (each source shuffled by ``rng``)."""
    queues = {}
    for source, sub in sorted(part.groupby("source"), key=lambda kv: kv[0]):
        idx = list(sub.index)
        rng.shuffle(idx)
        queues[source] = idx
    picked: list[int] = []
    while len(picked) < n and any(queues.values()):
        for source in list(queues):
            if queues[source] and len(picked) < n:
                picked.append(queues[source].pop())
    return part.loc[picked]


def build_real_sentiment(
    config: RealSentimentConfig = RealSentimentConfig(), root: Union[str, Path, None] = None
) -> tuple[ConceptData, pd.DataFrame]:
    """The real-text sentiment set: ``(ConceptData(train, test), the chosen sentences with their
    source, document, rating and split)``. Downloads (once) and reads the vaderSentiment sdist into
    ``root`` (default ``<workbench cache>/sae_corpus/sources``, shared with the SAE corpus)."""
    from ..sae.corpus import VADER_INNER_TARBALL, VADER_PACKAGE, fetch_vader

    if not isinstance(config, RealSentimentConfig):
        raise TypeError(f"config must be a RealSentimentConfig, got {type(config).__name__}")
    folder = fetch_vader(
        Path(root) if root is not None else cache_dir() / "sae_corpus" / "sources", config.vader_version
    )
    pool = select_sentences(rated_sentences(folder, config.group_size), config)
    rng = random.Random(config.seed)
    chosen = []
    for split, n in (("train", config.n_train), ("test", config.n_test)):
        for label in (1, 0):
            chosen.append(_round_robin(pool[(pool["split"] == split) & (pool["label"] == label)], n, rng))
    table = pd.concat(chosen, ignore_index=True)
    counts = table.groupby(["split", "label", "source"]).size().rename("n").reset_index().to_dict(orient="records")
    docs = {split: int(table.loc[table["split"] == split, "doc_id"].nunique()) for split in ("train", "test")}
    provenance = {
        "source": "human-rated sentences of Hutto & Gilbert (2014), PyPI sdist "
        f"{VADER_PACKAGE}=={config.vader_version} ({VADER_INNER_TARBALL})",
        "builder": "workbench.concepts.realtext.build_real_sentiment",
        "labels": "mean human rating (-4 … +4): positive >= threshold, negative <= -threshold",
        "split": "by source document: held out iff workbench.sae.corpus.is_heldout(doc_id, test_fraction)",
        "config": asdict(config),
        "documents": docs,
        "counts": counts,
        "available": {
            f"{split}/{'positive' if label else 'negative'}": int(
                ((pool["split"] == split) & (pool["label"] == label)).sum()
            )
            for split in ("train", "test")
            for label in (1, 0)
        },
    }
    sets = {}
    for split in ("train", "test"):
        part = table[table["split"] == split]
        sets[split] = ConceptSet(
            REAL_CONCEPT,
            list(part.loc[part["label"] == 1, "text"]),
            list(part.loc[part["label"] == 0, "text"]),
            False,
            "positive",
            "negative",
            "Tweets, movie-review, NYT-editorial and Amazon-review sentences rated clearly positive or negative by "
            "human raters (VADER ground truth).",
            provenance=provenance,
        )
    overlap = set(table.loc[table["split"] == "train", "doc_id"]) & set(table.loc[table["split"] == "test", "doc_id"])
    if overlap:  # cannot happen with a hash split; a guard against a future change of the grouping
        raise RuntimeError(f"documents on both sides of the split: {sorted(overlap)[:5]}")
    return ConceptData(sets["train"], sets["test"]), table


def write_real_sentiment(
    path: Union[str, Path, None] = None,
    config: RealSentimentConfig = RealSentimentConfig(),
    root: Union[str, Path, None] = None,
) -> Path:
    """Build the set and write it as a concept file (default ``workbench/data/sentiment_real.jsonl``):
    the provenance line, then one row per sentence with its ``split``, ``label`` and ``text`` (what
    ``load_concept`` reads) and its ``source``, ``doc`` and mean human ``rating``."""
    data, table = build_real_sentiment(config, root)
    train = data.train
    head = {
        "concept": train.name,
        "positive_label": train.positive_label,
        "negative_label": train.negative_label,
        "description": train.description,
        "provenance": train.provenance,
    }
    lines = [json.dumps(head, ensure_ascii=False)]
    for split in ("train", "test"):
        for label in (1, 0):
            part = table[(table["split"] == split) & (table["label"] == label)]
            lines += [
                json.dumps(
                    {
                        "split": split,
                        "label": label,
                        "text": r.text,
                        "source": r.source,
                        "doc": r.doc_id,
                        "rating": r.rating,
                    },
                    ensure_ascii=False,
                )
                for r in part.itertuples()
            ]
    return save_text(Path(path) if path is not None else DATA_DIR / f"{REAL_CONCEPT}.jsonl", "\n".join(lines) + "\n")


def is_template(concept: str) -> bool:
    """True for the template-written shipped concepts (``templates.BUILDERS``)."""
    from .templates import BUILDERS

    return concept in BUILDERS


__all__ = [
    "REAL_CONCEPT",
    "RealSentimentConfig",
    "build_real_sentiment",
    "is_template",
    "rated_sentences",
    "select_sentences",
    "write_real_sentiment",
]
