"""Clean/corrupted tasks for patching.

A ``Task`` is a batch of clean prompts, a batch of corrupted prompts of the *same token length*, and
for each prompt the clean answer token and the corrupted answer token. Its metric (the normalised
logit difference) is in ``workbench.patching.metric`` and re-exported here.

Builders for the embedded model: ``ioi_task`` (indirect object identification, Wang et al. 2022),
``capital_task`` (factual recall: country → capital) and ``antonym_task`` ("The opposite of hot is"
→ " cold"). Every word that varies is checked to be a single token with its leading space; prompts
are encoded by ``workbench.tokens.encode`` (with a BOS token only where the model's config prepends
one; SmolLM2 does not). ``check_task`` runs the model, reports clean accuracy and drops the prompts
it fails.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Optional

import torch
from jaxtyping import Int
from torch import Tensor

from ..tokens import encode
from ..validation import check_int
from .metric import LogitDiffMetric, TaskCheck, check_task, last_logits, logit_diff, make_metric


@dataclass(frozen=True)
class Task:
    """Clean and corrupted token batches ``[n, pos]`` (equal shapes, no padding) with the answer
    token of each: ``correct[i]`` for clean prompt i, ``wrong[i]`` for its corrupted partner."""

    name: str
    clean: Int[Tensor, "n pos"]
    corrupted: Int[Tensor, "n pos"]
    correct: Int[Tensor, " n"]
    wrong: Int[Tensor, " n"]
    clean_prompts: tuple[str, ...] = ()
    corrupted_prompts: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.clean.ndim != 2 or self.clean.shape != self.corrupted.shape:
            raise ValueError(
                f"task '{self.name}': clean and corrupted tokens must be 2-d with equal shapes (same token length), "
                f"got {tuple(self.clean.shape)} and {tuple(self.corrupted.shape)}"
            )
        n = self.clean.shape[0]
        if n == 0:
            raise ValueError(f"task '{self.name}' has no prompts")
        for what in ("correct", "wrong"):
            t = getattr(self, what)
            if t.shape != (n,):
                raise ValueError(f"task '{self.name}': {what} must have shape ({n},), got {tuple(t.shape)}")
        if bool((self.correct == self.wrong).any()):
            bad = torch.nonzero(self.correct == self.wrong).flatten().tolist()
            raise ValueError(
                f"task '{self.name}': prompts {bad} have the same correct and wrong answer; "
                "the logit difference would be 0"
            )
        for what in ("clean_prompts", "corrupted_prompts"):
            texts = getattr(self, what)
            if texts and len(texts) != n:
                raise ValueError(f"task '{self.name}': {what} has {len(texts)} texts for {n} prompts")

    @property
    def n(self) -> int:
        return self.clean.shape[0]

    @property
    def seq_len(self) -> int:
        return self.clean.shape[1]

    def subset(self, rows: Sequence[int], note: Optional[str] = None) -> "Task":
        rows = list(rows)
        pick = lambda texts: tuple(texts[i] for i in rows) if texts else ()
        return replace(
            self,
            clean=self.clean[rows],
            corrupted=self.corrupted[rows],
            correct=self.correct[rows],
            wrong=self.wrong[rows],
            clean_prompts=pick(self.clean_prompts),
            corrupted_prompts=pick(self.corrupted_prompts),
            notes=self.notes + ((note,) if note else ()),
        )

    def head(self, n: int) -> "Task":
        if n < 1:
            raise ValueError(f"need at least one prompt, got n={n}")
        return self.subset(range(min(n, self.n)))


# --------------------------------------------------------------------------- builders
IOI_TEMPLATES = (
    "When {A} and {B} went to the store, {S} gave a drink to",
    "When {A} and {B} went to the park, {S} handed a ball to",
    "When {A} and {B} arrived at the office, {S} passed a note to",
    "After {A} and {B} went to the market, {S} gave an apple to",
    "While {A} and {B} were at the party, {S} sent a message to",
    "When {A} and {B} got to the house, {S} showed a photo to",
    "When {A} and {B} sat in the garden, {S} threw a ball to",
)
NAMES = (
    "Mary",
    "John",
    "Alice",
    "Bob",
    "James",
    "Sarah",
    "Tom",
    "Anna",
    "David",
    "Emma",
    "Michael",
    "Lisa",
    "Paul",
    "Kate",
    "Mark",
    "Laura",
    "Peter",
    "Susan",
    "Daniel",
    "Rachel",
    "Jane",
    "Kevin",
    "Emily",
    "Jack",
)
CAPITALS = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "China": "Beijing",
    "Russia": "Moscow",
    "Egypt": "Cairo",
    "England": "London",
    "Greece": "Athens",
    "Austria": "Vienna",
    "Ireland": "Dublin",
    "Norway": "Oslo",
    "Poland": "Warsaw",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Canada": "Ottawa",
    "Portugal": "Lisbon",
    "Sweden": "Stockholm",
    "Cuba": "Havana",
    "Hungary": "Budapest",
}
ANTONYMS = {
    "hot": "cold",
    "up": "down",
    "big": "small",
    "fast": "slow",
    "happy": "sad",
    "good": "bad",
    "light": "dark",
    "open": "closed",
    "high": "low",
    "left": "right",
    "black": "white",
    "rich": "poor",
    "hard": "soft",
    "wet": "dry",
    "early": "late",
    "strong": "weak",
    "day": "night",
    "love": "hate",
    "true": "false",
    "full": "empty",
    "old": "new",
}


def single_token(tokenizer, word: str) -> int:
    """The id of ``word`` if it is exactly one token (pass the leading space), else a ValueError."""
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = [tokenizer.decode([i]) for i in ids]
        raise ValueError(f"{word!r} is {len(ids)} tokens {pieces}, not one")
    return int(ids[0])


def _single_token_words(tokenizer, words: Sequence[str]) -> list[str]:
    return [w for w in words if len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) == 1]


def _from_pairs(model, name: str, pairs: Sequence[tuple[str, str, str, str]], notes: tuple[str, ...] = ()) -> Task:
    """``pairs`` = (clean prompt, corrupted prompt, clean answer, corrupted answer); answers carry
    their leading space. Keeps prompts of the most common token length (and says so)."""
    tok = model.tokenizer
    if tok is None:
        raise ValueError("task builders need a model with a tokenizer (the embedded model)")
    rows = []
    for cp, xp, ca, xa in pairs:
        c, x = encode(model, cp), encode(model, xp)
        if len(c) != len(x):
            continue
        rows.append((cp, xp, c, x, single_token(tok, ca), single_token(tok, xa)))
    if not rows:
        raise ValueError(f"task '{name}': no clean/corrupted pair has equal token lengths")
    lengths = [len(r[2]) for r in rows]
    common = max(set(lengths), key=lengths.count)
    kept = [r for r in rows if len(r[2]) == common]
    if len(kept) < len(pairs):
        notes = (*notes, f"kept {len(kept)} of {len(pairs)} prompts with the common length {common} tokens")
    return Task(
        name=name,
        clean=torch.tensor([r[2] for r in kept]),
        corrupted=torch.tensor([r[3] for r in kept]),
        correct=torch.tensor([r[4] for r in kept]),
        wrong=torch.tensor([r[5] for r in kept]),
        clean_prompts=tuple(r[0] for r in kept),
        corrupted_prompts=tuple(r[1] for r in kept),
        notes=notes,
    )


def ioi_task(model, n: int = 16, *, seed: int = 0, templates: Sequence[str] = IOI_TEMPLATES) -> Task:
    """Indirect object identification (Wang et al. 2022). Clean: "When Mary and John went to the
    store, John gave a drink to" → " Mary" (the indirect object). Corrupted: the same sentence with
    the second mention replaced by the other name ("..., Mary gave a drink to" → " John"), so the
    answer flips and the token length is unchanged. Names are those that are single tokens with a
    leading space in the model's tokenizer."""
    check_int("n", n, min=1)
    names = _single_token_words(model.tokenizer, NAMES)
    if len(names) < 2:
        raise ValueError("fewer than two names are single tokens in this tokenizer")
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        t = templates[i % len(templates)]
        io, s = rng.sample(names, 2)
        a, b = (io, s) if rng.random() < 0.5 else (s, io)
        pairs.append((t.format(A=a, B=b, S=s), t.format(A=a, B=b, S=io), " " + io, " " + s))
    return _from_pairs(model, "ioi", pairs)


def _distinct_pairs(items: Sequence, n: int, seed: int) -> list[tuple]:
    """``n`` (clean item, corrupted item) pairs: clean items without repeats (cycling through a
    shuffled list when ``n`` exceeds it), each with a different random partner."""
    check_int("n", n, min=1)
    if len(items) < 2:
        raise ValueError("need at least two items whose words are single tokens")
    rng = random.Random(seed)
    order = list(items)
    rng.shuffle(order)
    out = []
    for i in range(n):
        first = order[i % len(order)]
        second = rng.choice([x for x in items if x != first])
        out.append((first, second))
    return out


def capital_task(model, n: int = 16, *, seed: int = 0) -> Task:
    """Factual recall: "The capital of France is" → " Paris"; corrupted with another country
    ("The capital of Japan is" → " Tokyo"). Countries and capitals are single tokens."""
    tok = model.tokenizer
    items = [
        (c, a)
        for c, a in CAPITALS.items()
        if len(tok(" " + c, add_special_tokens=False)["input_ids"]) == 1
        and len(tok(" " + a, add_special_tokens=False)["input_ids"]) == 1
    ]
    pairs = [
        (f"The capital of {c1} is", f"The capital of {c2} is", " " + a1, " " + a2)
        for (c1, a1), (c2, a2) in _distinct_pairs(items, n, seed)
    ]
    return _from_pairs(model, "capital", pairs)


def antonym_task(model, n: int = 16, *, seed: int = 0) -> Task:
    """Antonyms, with a two-shot prefix: "Antonyms: hot and cold, big and small, up and" → " down";
    corrupted with another word ("..., left and" → " right"). Words and antonyms are single
    tokens; the two in-prompt examples are not used as test items. (Zero-shot "The opposite of
    up is" is right for only 16 of the 21 words; this template for 20 of 21, measured.)"""
    tok = model.tokenizer
    shots = ("hot", "big")
    items = [
        (w, a)
        for w, a in ANTONYMS.items()
        if w not in shots
        and len(tok(" " + w, add_special_tokens=False)["input_ids"]) == 1
        and len(tok(" " + a, add_special_tokens=False)["input_ids"]) == 1
    ]
    prefix = "Antonyms: " + ", ".join(f"{w} and {ANTONYMS[w]}" for w in shots) + ", "
    pairs = [
        (f"{prefix}{w1} and", f"{prefix}{w2} and", " " + a1, " " + a2)
        for (w1, a1), (w2, a2) in _distinct_pairs(items, n, seed)
    ]
    return _from_pairs(model, "antonym", pairs)


TASKS = {"ioi": ioi_task, "capital": capital_task, "antonym": antonym_task}


def build_task(model, name: str, n: int = 16, *, seed: int = 0) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name](model, n, seed=seed)


def random_task(d_vocab: int, n: int = 4, seq_len: int = 6, *, seed: int = 0, name: str = "random") -> Task:
    """A task of random token ids for mechanics tests on a tiny model (no tokenizer): corrupted
    prompts differ from clean ones at a few positions; answers are random distinct ids."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, d_vocab, (n, seq_len), generator=g)
    corrupted = clean.clone()
    for i in range(n):
        pos = torch.randperm(seq_len, generator=g)[:2]
        corrupted[i, pos] = torch.randint(0, d_vocab, (2,), generator=g)
    correct = torch.randint(0, d_vocab, (n,), generator=g)
    wrong = (correct + 1 + torch.randint(0, d_vocab - 1, (n,), generator=g)) % d_vocab
    return Task(name, clean, corrupted, correct, wrong)


__all__ = [
    "ANTONYMS",
    "CAPITALS",
    "IOI_TEMPLATES",
    "NAMES",
    "TASKS",
    "LogitDiffMetric",
    "Task",
    "TaskCheck",
    "antonym_task",
    "build_task",
    "capital_task",
    "check_task",
    "ioi_task",
    "last_logits",
    "logit_diff",
    "make_metric",
    "random_task",
    "single_token",
]
