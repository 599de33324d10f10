"""Concept data: ``ConceptSet`` (validated positive/negative texts or contrastive pairs) and its JSONL files.

A concept file in ``workbench/data/<name>.jsonl`` starts with one provenance line
``{"concept": ..., "positive_label": ..., "negative_label": ..., "description": ..., "provenance": {...}}``
followed by one example per line, either a contrastive pair
``{"split": "train"|"test", "positive": "...", "negative": "..."}`` or a single text
``{"split": ..., "label": 1|0, "text": "..."}``. Pairs keep their order: ``positive[i]`` and
``negative[i]`` differ only in the concept.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Union

from ..artifacts import save_text

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
Split = Literal["train", "test", "all"]


class ConceptDataError(ValueError):
    """Concept data is unusable; the message names the bad value and what would be valid."""


@dataclass(frozen=True)
class ConceptSet:
    """Positive (concept present) and negative (concept absent / opposite) texts.

    ``paired=True`` means ``positive[i]`` and ``negative[i]`` form a contrastive pair (equal counts).
    Validation: neither side may be empty, the larger side may hold at most ``max_ratio`` times the
    smaller one, every text must be a non-empty string of at most ``max_chars`` characters."""

    name: str
    positive: Sequence[str]
    negative: Sequence[str]
    paired: bool = False
    positive_label: str = "positive"
    negative_label: str = "negative"
    description: str = ""
    max_ratio: float = 1.5
    max_chars: int = 600
    provenance: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConceptDataError(f"a ConceptSet needs a non-empty name, got {self.name!r}")
        object.__setattr__(self, "positive", tuple(self.positive))
        object.__setattr__(self, "negative", tuple(self.negative))
        for side, texts in (("positive", self.positive), ("negative", self.negative)):
            if not texts:
                raise ConceptDataError(
                    f"concept '{self.name}': the {side} side is empty; give at least one text per side"
                )
            for i, t in enumerate(texts):
                if not isinstance(t, str) or not t.strip():
                    raise ConceptDataError(f"concept '{self.name}': {side} text {i} is empty or not a string: {t!r}")
                if len(t) > self.max_chars:
                    raise ConceptDataError(
                        f"concept '{self.name}': {side} text {i} has {len(t)} characters, more than "
                        f"max_chars={self.max_chars}: {t[:50]!r}... (shorten it or raise max_chars)"
                    )
        if self.max_ratio < 1:
            raise ConceptDataError(f"max_ratio must be >= 1, got {self.max_ratio}")
        n_pos, n_neg = len(self.positive), len(self.negative)
        if self.paired and n_pos != n_neg:
            raise ConceptDataError(
                f"concept '{self.name}' is paired but has {n_pos} positive and {n_neg} negative texts; "
                "pairs need equal counts"
            )
        if max(n_pos, n_neg) > self.max_ratio * min(n_pos, n_neg):
            raise ConceptDataError(
                f"concept '{self.name}' is lopsided: {n_pos} positive vs {n_neg} negative texts "
                f"(ratio {max(n_pos, n_neg) / min(n_pos, n_neg):.2f} > max_ratio={self.max_ratio}); balance the sides"
            )

    def __len__(self) -> int:
        return len(self.positive) + len(self.negative)

    @property
    def texts(self) -> list[str]:
        """Positive texts then negative texts."""
        return list(self.positive) + list(self.negative)

    @property
    def labels(self) -> list[int]:
        """1 for each positive text, 0 for each negative one (same order as ``texts``)."""
        return [1] * len(self.positive) + [0] * len(self.negative)

    def head(self, n: int) -> "ConceptSet":
        """The first ``n`` examples of each side (pairs stay pairs)."""
        if n < 1:
            raise ConceptDataError(f"head needs n >= 1, got {n}")
        return self._replace(self.positive[:n], self.negative[:n])

    def _replace(self, positive, negative) -> "ConceptSet":
        return ConceptSet(
            self.name,
            positive,
            negative,
            self.paired,
            self.positive_label,
            self.negative_label,
            self.description,
            self.max_ratio,
            self.max_chars,
            dict(self.provenance),
        )


@dataclass(frozen=True)
class ConceptData:
    """A concept's train and held-out test sets, as loaded from one JSONL file."""

    train: ConceptSet
    test: Optional[ConceptSet] = None

    @property
    def name(self) -> str:
        return self.train.name


def available_concepts(directory: Union[str, Path, None] = None) -> list[str]:
    d = Path(directory) if directory is not None else DATA_DIR
    return sorted(p.stem for p in d.glob("*.jsonl"))


def _concept_path(name: str, directory: Union[str, Path, None]) -> Path:
    p = Path(name)
    if p.suffix == ".jsonl" and p.exists():
        return p
    d = Path(directory) if directory is not None else DATA_DIR
    path = d / f"{name}.jsonl"
    if not path.exists():
        known = ", ".join(available_concepts(d)) or "none"
        raise ConceptDataError(f"no concept named {name!r} in {d}; available: {known}")
    return path


def load_concept(name: str, *, directory: Union[str, Path, None] = None) -> ConceptData:
    """Read ``<directory>/<name>.jsonl`` (default: the shipped ``workbench/data``) into train/test sets."""
    path = _concept_path(name, directory)
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise ConceptDataError(f"{path} is empty")
    head = json.loads(lines[0])
    if "provenance" not in head or "concept" not in head:
        raise ConceptDataError(
            f"{path}: the first line must be the provenance line with 'concept' and 'provenance' keys"
        )
    sides: dict[str, dict[str, list[str]]] = {s: {"positive": [], "negative": []} for s in ("train", "test")}
    paired = None
    for n, ln in enumerate(lines[1:], start=2):
        row = json.loads(ln)
        split = row.get("split")
        if split not in sides:
            raise ConceptDataError(f"{path}:{n}: split must be 'train' or 'test', got {split!r}")
        is_pair = "positive" in row and "negative" in row
        if paired is None:
            paired = is_pair
        elif paired != is_pair:
            raise ConceptDataError(f"{path}:{n}: mixes pairs and single texts; use one kind per file")
        if is_pair:
            sides[split]["positive"].append(row["positive"])
            sides[split]["negative"].append(row["negative"])
        else:
            if row.get("label") not in (0, 1) or "text" not in row:
                raise ConceptDataError(
                    f"{path}:{n}: a single-text row needs 'text' and 'label' 0 or 1, got {sorted(row)}"
                )
            sides[split]["positive" if row["label"] == 1 else "negative"].append(row["text"])
    meta = dict(
        positive_label=head.get("positive_label", "positive"),
        negative_label=head.get("negative_label", "negative"),
        description=head.get("description", ""),
        provenance=head["provenance"],
    )
    if not sides["train"]["positive"] and not sides["train"]["negative"]:
        raise ConceptDataError(f"{path} has no training examples")
    sets = {
        s: ConceptSet(head["concept"], v["positive"], v["negative"], bool(paired), **meta)
        for s, v in sides.items()
        if v["positive"] or v["negative"]
    }
    return ConceptData(sets["train"], sets.get("test"))


def save_concept(path: Union[str, Path], train: ConceptSet, test: Optional[ConceptSet] = None) -> Path:
    """Write ``train`` (and ``test``) as a concept JSONL file with its provenance line."""
    if not isinstance(train, ConceptSet) or not (test is None or isinstance(test, ConceptSet)):
        raise TypeError("save_concept needs ConceptSet train (and test) sets")
    head = {
        "concept": train.name,
        "positive_label": train.positive_label,
        "negative_label": train.negative_label,
        "description": train.description,
        "provenance": train.provenance,
    }
    out = [json.dumps(head, ensure_ascii=False)]
    for split, cs in (("train", train), ("test", test)):
        if cs is None:
            continue
        if cs.paired:
            out += [
                json.dumps({"split": split, "positive": p, "negative": q}, ensure_ascii=False)
                for p, q in zip(cs.positive, cs.negative)
            ]
        else:
            out += [json.dumps({"split": split, "label": 1, "text": t}, ensure_ascii=False) for t in cs.positive]
            out += [json.dumps({"split": split, "label": 0, "text": t}, ensure_ascii=False) for t in cs.negative]
    return save_text(path, "\n".join(out) + "\n")
