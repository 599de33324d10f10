"""Contrastive concept data written by the embedded instruct model (as in persona-vector work,
Chen et al. 2025: a natural-language description of a trait becomes contrastive instructions).

For each seed topic (drawn with a fixed seed), the model is asked twice, with the same topic, for one
sentence showing the positive side and one showing the negative side; the two answers form a
contrastive pair. Output is cleaned (first line, quotes and list markers stripped), filtered (length,
no chat artefacts, no refusals/preambles, both sides different) and de-duplicated; an optional
independent ``Judge`` keeps only pairs it classifies correctly. Sampling is seeded, so the same
arguments give the same set.
"""

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from tqdm.auto import tqdm

from ..models import chat_prompt
from ..registry import HookRegistry
from ..validation import check_float, check_int, check_probability, check_texts
from .data import ConceptDataError, ConceptSet, save_concept
from .judges import Judge

TOPICS = (
    "a morning commute",
    "a visit to the dentist",
    "a new smartphone",
    "a rainy weekend",
    "a neighbour",
    "a school trip",
    "a job interview",
    "a birthday party",
    "a hotel room",
    "an old car",
    "a football match",
    "a library",
    "a concert",
    "a long flight",
    "a cooking class",
    "a team meeting",
    "a garden",
    "a museum",
    "a hiking trail",
    "a movie night",
    "a train station",
    "a new colleague",
    "a software update",
    "a camping trip",
    "a city park",
    "a family dinner",
    "a phone call",
    "a shopping mall",
    "a piano lesson",
    "a winter holiday",
    "an online course",
    "a small bakery",
)
_PREAMBLE = re.compile(r"^(sure|here|certainly|of course|i can|i cannot|i can't|as an ai|sentence:)", re.IGNORECASE)


@dataclass(frozen=True)
class ConceptDescription:
    """What each side of a concept looks like, in words: ``positive`` / ``negative`` complete the phrase
    "Write one short sentence about <topic> that ..."."""

    name: str
    positive: str
    negative: str
    positive_label: str = "positive"
    negative_label: str = "negative"

    def __post_init__(self) -> None:
        for field_name in ("name", "positive", "negative"):
            v = getattr(self, field_name)
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"ConceptDescription.{field_name} must be a non-empty string, got {v!r}")

    @classmethod
    def parse(cls, text: str, name: str = "generated") -> "ConceptDescription":
        """Parse ``"<positive side> vs <negative side>"``, e.g.
        ``"expresses joy vs expresses sadness"``."""
        if not isinstance(text, str) or text.count(" vs ") != 1:
            raise ValueError(f"a concept description must read '<positive side> vs <negative side>', got {text!r}")
        pos, neg = (s.strip() for s in text.split(" vs "))
        return cls(name, pos, neg)


def clean_generation(text: str) -> Optional[str]:
    """The first non-empty line, without list markers or surrounding quotes; None when it looks like a
    preamble or carries chat artefacts."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            break
    else:
        return None
    line = re.sub(r"^(\d+[.)]|[-*•])\s*", "", line).strip().strip("\"“”'").strip()
    if "<|" in line or "|>" in line or _PREAMBLE.match(line):
        return None
    return line


def _keep(text: Optional[str], min_chars: int, max_chars: int) -> bool:
    return text is not None and min_chars <= len(text) <= max_chars and any(c.isalpha() for c in text)


def generate_concept_set(
    model,
    description: Union[str, ConceptDescription],
    n: int,
    *,
    seed: int = 0,
    max_new_tokens: int = 40,
    temperature: float = 0.8,
    top_p: float = 0.95,
    batch_size: int = 16,
    max_rounds: int = 6,
    min_chars: int = 15,
    max_chars: int = 220,
    judge: Optional[Judge] = None,
    topics: tuple[str, ...] = TOPICS,
    path: Union[str, Path, None] = None,
    progress: bool = True,
) -> ConceptSet:
    """Write ``n`` contrastive pairs for ``description`` with the instruct model; returns a paired
    ``ConceptSet`` (and writes it as JSONL with provenance when ``path`` is given).

    Rounds of ``batch_size`` topics are generated until ``n`` pairs survive cleaning, filtering and
    de-duplication; after ``max_rounds`` rounds with fewer, a ``ConceptDataError`` says how many were
    kept and what to change."""
    desc = ConceptDescription.parse(description) if isinstance(description, str) else description
    if not isinstance(desc, ConceptDescription):
        raise TypeError(f"description must be a string or a ConceptDescription, got {type(description).__name__}")
    check_int("n", n, min=1)
    check_int("seed", seed, min=0)
    check_int("max_new_tokens", max_new_tokens, min=1)
    check_float("temperature", temperature, min=0.0)
    check_probability("top_p", top_p, open_low=True)
    check_int("batch_size", batch_size, min=1)
    check_int("max_rounds", max_rounds, min=1)
    check_int("min_chars", min_chars, min=1)
    check_int("max_chars", max_chars, min=min_chars)
    topics = tuple(check_texts("topics", topics))
    rng = random.Random(seed)
    reg = HookRegistry(model)
    seen, pairs, dropped = set(), [], 0
    bar = tqdm(total=n, desc=f"generate {desc.name}", disable=not progress, leave=False)
    for rnd in range(max_rounds):
        k = min(batch_size, max(1, 2 * (n - len(pairs))))
        chosen = [rng.choice(topics) for _ in range(k)]
        prompts = []
        for topic in chosen:
            for side in (desc.positive, desc.negative):
                prompts.append(
                    chat_prompt(
                        model, f"Write one short sentence about {topic} that {side}. Reply with the sentence only."
                    )
                )
        gen = reg.generate(
            prompts, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed * 1000 + rnd
        )
        for i in range(k):
            p, q = clean_generation(gen.completions[2 * i]), clean_generation(gen.completions[2 * i + 1])
            ok = _keep(p, min_chars, max_chars) and _keep(q, min_chars, max_chars) and p.lower() != q.lower()
            ok = ok and p.lower() not in seen and q.lower() not in seen
            if ok and judge is not None:
                ok = judge.hit(p) and not judge.hit(q)
            if not ok:
                dropped += 1
                continue
            seen.update((p.lower(), q.lower()))
            pairs.append((p, q))
            bar.update(1)
            if len(pairs) == n:
                break
        if len(pairs) == n:
            break
    bar.close()
    if len(pairs) < n:
        raise ConceptDataError(
            f"generated only {len(pairs)} of {n} pairs for {desc.name!r} in {max_rounds} rounds "
            f"({dropped} dropped by the filters); raise max_rounds or batch_size, "
            "or relax min_chars/max_chars or the judge"
        )
    prov = {
        "source": "generated by the embedded instruct model (workbench.concepts.generate)",
        "model": getattr(model.cfg, "model_name", "?"),
        "description": {"positive": desc.positive, "negative": desc.negative},
        "seed": seed,
        "n": n,
        "temperature": temperature,
        "top_p": top_p,
        "max_new_tokens": max_new_tokens,
        "judge": judge.name if judge else None,
        "dropped": dropped,
    }
    cs = ConceptSet(
        desc.name,
        [p for p, _ in pairs],
        [q for _, q in pairs],
        True,
        desc.positive_label,
        desc.negative_label,
        f"{desc.positive} vs {desc.negative}",
        max_chars=max(600, max_chars),
        provenance=prov,
    )
    if path is not None:
        save_concept(path, cs)
    return cs
