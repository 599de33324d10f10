"""Argument checks shared by the circuit tools: token batches, answer tokens, positions, layers and
heads. Every check runs before any forward pass, names the bad value and says what is valid; ints
are real ints (``True`` is not a layer)."""

from collections.abc import Sequence
from typing import Optional, Union

import torch
from jaxtyping import Int
from torch import Tensor

from ..validation import check_int

PositionArg = Union[int, Sequence[int], Tensor]


def check_tokens(model, tokens, name: str = "tokens") -> Int[Tensor, "batch pos"]:
    """Integer token ids ``[batch, pos]`` inside the model's vocabulary (a 1-d tensor is one prompt)."""
    if not isinstance(tokens, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(tokens).__name__}")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got dtype {tokens.dtype}")
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or tokens.numel() == 0:
        raise ValueError(f"{name} must be a non-empty [batch, pos] tensor, got shape {tuple(tokens.shape)}")
    V = model.cfg.d_vocab
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= V:
        raise ValueError(f"{name} hold ids {lo}..{hi}, outside the vocabulary 0..{V - 1}")
    if tokens.shape[1] > model.cfg.n_ctx:
        raise ValueError(f"{name} have {tokens.shape[1]} positions, more than the model's n_ctx={model.cfg.n_ctx}")
    return tokens.long()


def check_answers(model, answers, batch: int, name: str) -> Int[Tensor, " batch"]:
    """One answer token id per prompt: an int (the same for every prompt), a list of ints or a 1-d
    integer tensor of length ``batch``, each inside the vocabulary."""
    if isinstance(answers, Tensor):
        if answers.is_floating_point() or answers.is_complex() or answers.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer token ids, got dtype {answers.dtype}")
        out = answers.long().flatten() if answers.ndim <= 1 else None
        if out is None:
            raise ValueError(f"{name} must be a 1-d tensor of token ids, got shape {tuple(answers.shape)}")
        if answers.ndim == 0:
            out = out.expand(batch)
    elif isinstance(answers, Sequence) and not isinstance(answers, (str, bytes)):
        out = torch.tensor([check_int(f"{name}[{i}]", a) for i, a in enumerate(answers)], dtype=torch.long)
    else:
        out = torch.full((batch,), check_int(name, answers), dtype=torch.long)
    if out.shape != (batch,):
        raise ValueError(f"{name} must give one token per prompt ({batch}), got {out.shape[0]}")
    V = model.cfg.d_vocab
    if int(out.min()) < 0 or int(out.max()) >= V:
        raise ValueError(f"{name} hold ids {int(out.min())}..{int(out.max())}, outside the vocabulary 0..{V - 1}")
    return out


def check_positions(positions: PositionArg, batch: int, seq_len: int, name: str = "positions") -> Int[Tensor, " batch"]:
    """One position per prompt, as non-negative indices ``[batch]``. An int applies to every prompt
    and may count from the end (-1 = last); a list or 1-d tensor gives each prompt its own."""
    if isinstance(positions, Tensor):
        if positions.is_floating_point() or positions.dtype == torch.bool or positions.ndim > 1:
            raise TypeError(
                f"{name} must be an int, a list of ints or a 1-d integer tensor, got {positions.dtype} "
                f"of shape {tuple(positions.shape)}"
            )
        raw = positions.flatten().tolist()
        if positions.ndim == 0:
            raw = raw * batch
    elif isinstance(positions, Sequence) and not isinstance(positions, (str, bytes)):
        raw = [check_int(f"{name}[{i}]", p) for i, p in enumerate(positions)]
    else:
        raw = [check_int(name, positions)] * batch
    if len(raw) != batch:
        raise ValueError(f"{name} must give one position per prompt ({batch}), got {len(raw)}")
    out = []
    for i, p in enumerate(raw):
        if not -seq_len <= p < seq_len:
            raise ValueError(f"{name}[{i}] = {p} is outside the sequence (-{seq_len}..{seq_len - 1})")
        out.append(p % seq_len)
    return torch.tensor(out, dtype=torch.long)


def check_layer(model, layer, name: str = "layer") -> int:
    n = model.cfg.n_layers
    layer = check_int(name, layer)
    if not 0 <= layer < n:
        raise ValueError(f"{name} {layer} is not a layer of this model (0..{n - 1})")
    return layer


def check_head(model, head, name: str = "head") -> int:
    H = model.cfg.n_heads
    head = check_int(name, head)
    if not 0 <= head < H:
        raise ValueError(f"{name} {head} is not a head of this model (0..{H - 1})")
    return head


def check_heads(model, heads, name: str = "heads", *, allow_none: bool = True) -> Optional[list[tuple[int, int]]]:
    """A list of ``(layer, head)`` pairs, each in range, without repeats (None = every head when
    ``allow_none``)."""
    if heads is None:
        if allow_none:
            return None
        raise ValueError(f"{name} must list at least one (layer, head) pair")
    if isinstance(heads, (str, bytes, Tensor)) or not isinstance(heads, Sequence):
        raise TypeError(f"{name} must be a list of (layer, head) pairs, got {type(heads).__name__}")
    if len(heads) == 0:
        raise ValueError(f"{name} is empty; list at least one (layer, head) pair")
    out = []
    for i, pair in enumerate(heads):
        if not isinstance(pair, Sequence) or isinstance(pair, (str, bytes)) or len(pair) != 2:
            raise TypeError(f"{name}[{i}] must be a (layer, head) pair, got {pair!r}")
        out.append((check_layer(model, pair[0], f"{name}[{i}] layer"), check_head(model, pair[1], f"{name}[{i}] head")))
    if len(set(out)) != len(out):
        dup = sorted({p for p in out if out.count(p) > 1})
        raise ValueError(f"{name} repeats {dup}")
    return out


def recorded(reg, name: str) -> Tensor:
    """A probe's record as one tensor (every row selected the same number of positions)."""
    value = reg.records[name]
    if not isinstance(value, Tensor):
        raise RuntimeError(f"probe {name!r} recorded rows of different lengths; circuits need unpadded equal rows")
    return value


def logits_of(out) -> Tensor:
    """``HookRegistry.run(..., need_logits=True)``'s logits (it returns None only without ``need_logits``)."""
    if not isinstance(out, Tensor):
        raise RuntimeError("HookRegistry.run(need_logits=True) returned no logits")
    return out


__all__ = [
    "check_answers",
    "check_head",
    "check_heads",
    "check_layer",
    "check_positions",
    "check_tokens",
    "logits_of",
    "recorded",
]
