"""Token positions that probes read and steers edit, resolved per forward pass.

Positions are *absolute* and *unpadded*: position 0 is a row's first real token, whatever the
padding, and during KV-cached generation a step's single new token has position ``len(sequence)-1``.
``resolve_positions`` is a pure function from a spec and the pass's position bookkeeping to a
boolean mask ``[batch, pos]``.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import torch
from jaxtyping import Bool, Int
from torch import Tensor

NAMED = ("all", "last", "prompt", "generated")
PositionSpec = Union[str, int, slice, Sequence[int], Tensor, "Positions"]


@dataclass(frozen=True, eq=False)
class Positions:
    """A validated position spec.

    - ``"all"``: every real (non-padding) token;
    - ``"last"``: the last token of the sequence so far (in KV-cached generation: each new token);
    - ``"prompt"`` / ``"generated"``: tokens of the prompt / tokens produced by generation;
    - an ``int`` (negative counts from the end of the sequence so far), a ``slice``, a list of ints;
    - a boolean mask ``[pos]`` or ``[batch, pos]`` over absolute positions.
    """

    spec: object

    def __post_init__(self) -> None:
        s = self.spec
        if isinstance(s, str):
            if s not in NAMED:
                raise ValueError(
                    f"unknown position spec {s!r}; use one of {NAMED}, an int, a slice, a list of ints "
                    "or a boolean mask"
                )
        elif isinstance(s, bool):
            raise TypeError("positions=True/False is ambiguous; use 'all' or a boolean mask tensor")
        elif isinstance(s, int):
            pass
        elif isinstance(s, slice):
            for part in (s.start, s.stop, s.step):
                if part is not None and not isinstance(part, int):
                    raise TypeError(f"slice positions need int bounds, got {s!r}")
            if s.step is not None and s.step <= 0:
                raise ValueError(f"slice positions need a positive step, got {s!r}")
        elif isinstance(s, Tensor):
            if s.dtype != torch.bool or s.ndim not in (1, 2):
                raise TypeError(
                    f"a mask of positions must be a bool tensor [pos] or [batch, pos], got {s.dtype} "
                    f"of shape {tuple(s.shape)}"
                )
        elif isinstance(s, tuple):
            if not s:
                raise ValueError("an empty list of positions selects nothing; pass at least one int")
            if not all(isinstance(i, int) and not isinstance(i, bool) for i in s):
                raise TypeError(f"a list of positions must hold ints, got {s!r}")
        else:
            raise TypeError(
                f"unsupported position spec {s!r}; use one of {NAMED}, an int, a slice, a list of ints "
                "or a boolean mask"
            )

    @classmethod
    def parse(cls, spec: PositionSpec) -> "Positions":
        if isinstance(spec, Positions):
            return spec
        if isinstance(spec, list):
            spec = tuple(spec)
        return cls(spec)

    def __str__(self) -> str:
        if isinstance(self.spec, Tensor):
            return f"mask{tuple(self.spec.shape)}"
        if isinstance(self.spec, tuple):
            return str(list(self.spec))
        if isinstance(self.spec, slice):
            s = self.spec
            start, stop = "" if s.start is None else s.start, "" if s.stop is None else s.stop
            step = "" if s.step is None else f":{s.step}"
            return f"[{start}:{stop}{step}]"
        return str(self.spec)


def _match_index(abs_pos: Tensor, seq_len: Tensor, i: int) -> Tensor:
    target = torch.full_like(seq_len, i) if i >= 0 else seq_len + i
    return abs_pos == target[:, None]


def resolve_positions(
    spec: Positions,
    abs_pos: Int[Tensor, "batch pos"],
    seq_len: Int[Tensor, " batch"],
    prompt_len: Int[Tensor, " batch"],
) -> Bool[Tensor, "batch pos"]:
    """Boolean mask of the selected tokens in one forward chunk.

    ``abs_pos[b, j]`` is the absolute unpadded position of chunk column ``j`` in row ``b`` (-1 for a
    padding column); ``seq_len[b]`` is the row's length so far (this chunk included);
    ``prompt_len[b]`` is the row's prompt length."""
    real = abs_pos >= 0
    s = spec.spec
    if isinstance(s, str):
        if s == "all":
            return real
        if s == "last":
            return abs_pos == (seq_len - 1)[:, None]
        if s == "prompt":
            return real & (abs_pos < prompt_len[:, None])
        return abs_pos >= prompt_len[:, None]  # generated
    if isinstance(s, int):
        return real & _match_index(abs_pos, seq_len, s)
    if isinstance(s, tuple):
        mask = torch.zeros_like(real)
        for i in s:
            mask |= _match_index(abs_pos, seq_len, i)
        return real & mask
    if isinstance(s, slice):
        mask = torch.zeros_like(real)
        for b, n in enumerate(seq_len.tolist()):
            start, stop, step = s.indices(int(n))
            p = abs_pos[b]
            mask[b] = (p >= start) & (p < stop) & ((p - start) % step == 0)
        return real & mask
    # boolean mask over absolute positions
    m = s.to(abs_pos.device)
    if m.ndim == 1:
        m = m.expand(abs_pos.shape[0], -1)
    elif m.shape[0] != abs_pos.shape[0]:
        raise ValueError(f"position mask has batch {m.shape[0]} but the input has batch {abs_pos.shape[0]}")
    idx = abs_pos.clamp(min=0)
    inside = real & (abs_pos < m.shape[1])
    picked = torch.gather(m, 1, idx.clamp(max=m.shape[1] - 1))
    return inside & picked
