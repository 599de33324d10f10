"""Attention heads: patterns, and previous-token, duplicate-token and induction scores for every head.

A head's pattern ``A[q, k]`` is the softmax attention of query position q on key position k
(``hook_pattern``). A head *type* is a 0/1 detection pattern ``D`` built from the tokens
(TransformerLens' ``head_detector``; Olsson et al. 2022 for induction heads):

* previous token: ``D[q, q−1] = 1``;
* duplicate token: ``D[q, k] = 1`` for earlier positions ``k < q`` holding the same token as q;
* induction: ``D[q, k] = 1`` where the token *before* k equals the token at q (``t[k−1] = t[q]``,
  ``1 ≤ k ≤ q``): attend to what followed the previous occurrence.

The score of a head is the attention mass it puts on ``D``, ``Σ_k A[q, k] D[q, k]``, averaged over
query rows and then over prompts. ``rows="defined"`` (default) averages over the rows where ``D`` has
at least one target (the usual induction score: 1 for a perfect induction head on a repeated
sequence); ``rows="all"`` averages over every row, which is ``detect_head``'s ``error_measure="mul"``
(``Σ A⊙D / Σ A``; rows without a target count as 0). ``exclude_first`` / ``exclude_current`` drop
attention to position 0 (a BOS or attention sink) / to the query itself and renormalise, as
``detect_head``'s ``exclude_bos`` / ``exclude_current_token`` do.

Induction heads are found on repeated random token sequences ``[r_1..r_n, r_1..r_n]`` (Olsson et al.
2022; Elhage et al. 2021): on the second half, an induction head attends from ``r_i`` to the
position after its first occurrence.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..registry import HookRegistry
from ..tokens import token_strings
from ..validation import check_bool, check_choice, check_int
from .checks import check_heads, check_tokens, recorded

HEAD_KINDS = ("previous_token", "duplicate_token", "induction")
ROWS = ("defined", "all")


def detection_pattern(tokens: Int[Tensor, "batch pos"], kind: str) -> Bool[Tensor, "batch q k"]:
    """The 0/1 pattern a head of ``kind`` would show on ``tokens`` (lower-triangular, per prompt)."""
    check_choice("kind", kind, HEAD_KINDS)
    if tokens.ndim == 1:
        tokens = tokens[None]
    b, T = tokens.shape
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    if kind == "previous_token":
        return torch.eye(T, dtype=torch.bool).roll(-1, dims=1).tril(-1).expand(b, T, T).clone()
    same = tokens[:, :, None] == tokens[:, None, :]  # [b, q, k]
    dup = same & causal.tril(-1)
    if kind == "duplicate_token":
        return dup
    ind = torch.zeros_like(dup)
    ind[:, :, 1:] = dup[:, :, :-1]  # D[q, k] = dup[q, k-1]
    return ind & causal


@dataclass(frozen=True)
class AttentionPatterns:
    """Patterns of chosen heads on a batch: ``patterns[b, i]`` is head ``heads[i]``'s ``[q, k]`` on
    prompt b; ``tokens`` the ids and ``strings`` each prompt's tokens as text."""

    heads: tuple[tuple[int, int], ...]
    patterns: Float[Tensor, "batch head q k"]
    tokens: Int[Tensor, "batch pos"]
    strings: tuple[tuple[str, ...], ...]

    def of(self, layer: int, head: int) -> Float[Tensor, "batch q k"]:
        if (layer, head) not in self.heads:
            raise KeyError(f"head ({layer}, {head}) was not recorded; recorded: {list(self.heads)}")
        return self.patterns[:, self.heads.index((layer, head))]


def _record_patterns(model, tokens: Tensor, layers: Sequence[int]) -> dict[int, Tensor]:
    """``{layer: [batch, head, q, k]}`` from one forward through the registry (no gradients)."""
    reg = HookRegistry(model)
    for L in layers:
        reg.probe(f"p{L}", f"attn.pattern.{L}")
    with torch.no_grad():
        reg.run(tokens, need_logits=False)
    return {L: recorded(reg, f"p{L}").movedim(1, 2) for L in layers}  # the registry puts q on dim 1


def attention_patterns(model, tokens: Int[Tensor, "batch pos"], heads: Sequence[tuple[int, int]]) -> AttentionPatterns:
    """Attention patterns of ``heads`` (a list of (layer, head)) on ``tokens``."""
    chosen = check_heads(model, heads, allow_none=False) or []
    tokens = check_tokens(model, tokens)
    per_layer = _record_patterns(model, tokens, sorted({L for L, _ in chosen}))
    pats = torch.stack([per_layer[L][:, h] for L, h in chosen], 1).cpu()
    strings = tuple(tuple(token_strings(model, row.tolist())) for row in tokens)
    return AttentionPatterns(tuple(chosen), pats, tokens, strings)


def pattern_score(
    patterns: Float[Tensor, "... q k"],
    detection: Bool[Tensor, "... q k"],
    *,
    rows: str = "defined",
    exclude_first: bool = False,
    exclude_current: bool = False,
) -> Float[Tensor, "..."]:
    """Attention mass on ``detection`` per pattern (see the module docstring for the conventions)."""
    check_choice("rows", rows, ROWS)
    check_bool("exclude_first", exclude_first)
    check_bool("exclude_current", exclude_current)
    if patterns.shape[-2:] != detection.shape[-2:]:
        raise ValueError(f"patterns {tuple(patterns.shape)} and detection {tuple(detection.shape)} differ in [q, k]")
    A = patterns
    if exclude_first or exclude_current:
        keep = torch.ones(A.shape[-2:], dtype=A.dtype, device=A.device)
        if exclude_first:
            keep[:, 0] = 0
        if exclude_current:
            keep.fill_diagonal_(0)
        A = A * keep
    D = detection.to(A.dtype).to(A.device)
    hit = (A * D).sum(-1)  # [..., q]
    mass = A.sum(-1)
    if rows == "all":
        return hit.sum(-1) / mass.sum(-1)
    defined = D.sum(-1) > 0  # [..., q] (broadcast over heads)
    defined = defined.expand_as(hit)
    if not bool(defined.any(-1).all()):
        raise ValueError("the detection pattern has no target in some prompt; a 'defined' score needs one")
    per_row = torch.where(defined, hit / mass.clamp_min(torch.finfo(A.dtype).tiny), torch.zeros_like(hit))
    return per_row.sum(-1) / defined.sum(-1)


@dataclass(frozen=True)
class HeadScores:
    """Scores ``[n_layers, n_heads]`` of every head per kind (mean over prompts), and the settings."""

    scores: dict[str, Float[Tensor, "layer head"]]
    rows: str
    n_prompts: int
    seq_len: int
    source: str  # what the tokens were, e.g. "repeated random tokens (2 × 50)"

    def top(self, kind: str, k: int = 5) -> list[tuple[int, int, float]]:
        """The ``k`` heads with the highest ``kind`` score, as (layer, head, score)."""
        if kind not in self.scores:
            raise KeyError(f"no {kind!r} scores; have {', '.join(self.scores)}")
        check_int("k", k, min=1)
        g = self.scores[kind]
        order = torch.argsort(g.flatten(), descending=True)[:k].tolist()
        return [(i // g.shape[1], i % g.shape[1], float(g.flatten()[i])) for i in order]

    def above(self, kind: str, threshold: float) -> list[tuple[int, int, float]]:
        """Every head whose ``kind`` score exceeds ``threshold``, highest first."""
        if kind not in self.scores:
            raise KeyError(f"no {kind!r} scores; have {', '.join(self.scores)}")
        n = int((self.scores[kind] > threshold).sum())
        return self.top(kind, n) if n else []


def head_scores(
    model,
    tokens: Int[Tensor, "batch pos"],
    kinds: Sequence[str] = HEAD_KINDS,
    *,
    rows: str = "defined",
    exclude_first: bool = False,
    exclude_current: bool = False,
    batch_size: int = 8,
    source: str = "tokens",
) -> HeadScores:
    """Scores of every head for each of ``kinds`` on ``tokens`` (one forward per ``batch_size``
    prompts, every layer's pattern read through the registry)."""
    tokens = check_tokens(model, tokens)
    if isinstance(kinds, str) or len(kinds) == 0:
        raise ValueError(f"kinds must be a non-empty list drawn from {HEAD_KINDS}, got {kinds!r}")
    kinds = [check_choice("kind", k, HEAD_KINDS) for k in kinds]
    check_choice("rows", rows, ROWS)
    check_int("batch_size", batch_size, min=1)
    if tokens.shape[1] < 2:
        raise ValueError("head scores need prompts of at least 2 tokens")
    detections = {k: detection_pattern(tokens, k) for k in kinds}
    n_layers = model.cfg.n_layers
    per_prompt = {k: [] for k in kinds}
    for start in range(0, tokens.shape[0], batch_size):
        chunk = tokens[start : start + batch_size]
        pats = _record_patterns(model, chunk, range(n_layers))
        stacked = torch.stack([pats[L] for L in range(n_layers)], 1).cpu()  # [b, layer, head, q, k]
        for k in kinds:
            det = detections[k][start : start + batch_size][:, None, None]
            per_prompt[k].append(
                pattern_score(stacked, det, rows=rows, exclude_first=exclude_first, exclude_current=exclude_current)
            )
    scores = {k: torch.cat(v, 0).mean(0) for k, v in per_prompt.items()}
    return HeadScores(scores, rows, tokens.shape[0], tokens.shape[1], source)


def repeated_random_tokens(
    model, n_prompts: int = 8, half_len: int = 50, *, seed: int = 0, exclude: Optional[Sequence[int]] = None
) -> Int[Tensor, "n_prompts pos"]:
    """``[r_1..r_n, r_1..r_n]`` with ``r`` uniform over the vocabulary minus the tokenizer's special
    tokens (and ``exclude``); a BOS token first when the model's config prepends one."""
    check_int("n_prompts", n_prompts, min=1)
    check_int("half_len", half_len, min=1)
    tok = getattr(model, "tokenizer", None)
    bos = getattr(tok, "bos_token_id", None) if tok is not None and model.cfg.default_prepend_bos else None
    total = 2 * half_len + (bos is not None)
    if total > model.cfg.n_ctx:
        raise ValueError(f"2 × half_len = {2 * half_len} tokens do not fit the model's n_ctx={model.cfg.n_ctx}")
    banned = set(exclude or ()) | set(getattr(tok, "all_special_ids", None) or ())
    allowed = torch.tensor([i for i in range(model.cfg.d_vocab) if i not in banned])
    if len(allowed) < 2:
        raise ValueError("fewer than two token ids left to draw from")
    g = torch.Generator().manual_seed(seed)
    half = allowed[torch.randint(0, len(allowed), (n_prompts, half_len), generator=g)]
    out = torch.cat([half, half], 1)
    if bos is not None:
        out = torch.cat([torch.full((n_prompts, 1), int(bos)), out], 1)
    return out


def induction_scores(model, n_prompts: int = 8, half_len: int = 50, *, seed: int = 0, **kw) -> HeadScores:
    """Previous-token, duplicate-token and induction scores of every head on repeated random tokens."""
    tokens = repeated_random_tokens(model, n_prompts, half_len, seed=seed)
    return head_scores(
        model, tokens, HEAD_KINDS, source=f"repeated random tokens ({n_prompts} prompts of 2 × {half_len})", **kw
    )


__all__ = [
    "HEAD_KINDS",
    "AttentionPatterns",
    "HeadScores",
    "attention_patterns",
    "detection_pattern",
    "head_scores",
    "induction_scores",
    "pattern_score",
    "repeated_random_tokens",
]
