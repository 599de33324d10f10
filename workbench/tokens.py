"""Tokenising batches with explicit padding and attention masks."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Union

import torch
from jaxtyping import Int
from torch import Tensor


@dataclass(frozen=True)
class Batch:
    """Token ids ``[batch, pos]``, their attention mask (1 = real token) and each row's length."""

    tokens: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]

    @property
    def lengths(self) -> Int[Tensor, " batch"]:
        return self.attention_mask.sum(-1)

    @property
    def padding_side(self) -> str:
        m = self.attention_mask
        return "left" if bool((m[:, -1] == 1).all()) and not bool((m[:, 0] == 1).all()) else "right"


def pad_token_id(model) -> int:
    tok = getattr(model, "tokenizer", None)
    if tok is not None:
        if tok.pad_token_id is not None:
            return int(tok.pad_token_id)
        if tok.eos_token_id is not None:
            return int(tok.eos_token_id)
    return 0


def encode(model, text: str) -> list[int]:
    """Token ids of one text as workbench feeds it to the model: no special tokens, plus BOS only
    when the model's config prepends one (SmolLM2 does not). The one encoding path of workbench."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"a text must be a non-empty string, got {text!r}")
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise ValueError("this model has no tokenizer; pass token ids instead of strings")
    ids = list(tok(text, add_special_tokens=False)["input_ids"])
    if getattr(model.cfg, "default_prepend_bos", False) and tok.bos_token_id is not None:
        ids = [tok.bos_token_id, *ids]
    return ids


def token_strings(model, ids) -> list[str]:
    """Each token id decoded on its own (``str(id)`` when the model has no tokenizer); negative ids
    (workbench's "no token" marker) are skipped. The one token-to-string of workbench."""
    tok = getattr(model, "tokenizer", None)
    out = []
    for i in ids:
        i = int(i)
        if i < 0:
            continue
        out.append(tok.decode([i]) if tok is not None else str(i))
    return out


def tokenize(
    model,
    texts: Union[str, Sequence[str]],
    *,
    padding_side: Literal["left", "right"] = "left",
    max_length: Union[int, None] = None,
) -> Batch:
    """Tokenise ``texts`` (no BOS unless the model's config prepends one) into a padded batch.

    Raises on an empty list or an empty string, naming the bad item."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError("no texts to tokenise: the list is empty")
    rows = []
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t:
            raise ValueError(f"text {i} is empty or not a string: {t!r}")
        ids = encode(model, t)
        if max_length is not None and len(ids) > max_length:
            raise ValueError(f"text {i} has {len(ids)} tokens, more than max_length={max_length}: {t[:60]!r}...")
        rows.append(ids)
    return pad_rows(rows, pad_token_id(model), padding_side=padding_side)


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int, *, padding_side: str = "left") -> Batch:
    n = max(len(r) for r in rows)
    if n == 0:
        raise ValueError("every row is empty")
    tokens = torch.full((len(rows), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    for i, r in enumerate(rows):
        if padding_side == "left":
            tokens[i, n - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, n - len(r) :] = 1
        else:
            tokens[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
    return Batch(tokens, mask)
