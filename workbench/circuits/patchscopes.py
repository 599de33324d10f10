"""Patchscopes (Ghandeharioun et al. 2024, "Patchscopes: a unifying framework for inspecting hidden
representations of language models"): read a hidden state by letting the model decode it.

Take the residual ``h = resid_post.ℓ`` at position i of a *source* prompt; run a *target* prompt — by
default the few-shot identity prompt ``"cat -> cat; 1135 -> 1135; hello -> hello; ?"`` — with the
residual of its placeholder (the last token, ``?``) at layer ℓ* (default ℓ* = ℓ) replaced by h, and
generate greedily. If h encodes an entity, the identity prompt makes the model say it. One batch
row per source layer; the patch acts only in the prompt pass (positions are absolute, so the
generated tokens are not patched).

``logit_lens_reading`` is the comparison the paper draws: the top token of
``workbench.readout.resid_to_logits(h)`` (the logit lens) for the same h.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..edits import EditContext
from ..readout import resid_to_logits
from ..registry import HookRegistry
from ..tokens import encode, token_strings
from ..validation import check_int
from .checks import check_layer, check_positions, check_tokens, recorded

IDENTITY_PROMPT = "cat -> cat; 1135 -> 1135; hello -> hello; ?"


def _as_ids(model, text_or_ids, name: str) -> Tensor:
    if isinstance(text_or_ids, str):
        return torch.tensor(encode(model, text_or_ids))[None]
    ids = check_tokens(model, text_or_ids, name)
    if ids.shape[0] != 1:
        raise ValueError(f"{name} must be one prompt, got {ids.shape[0]}")
    return ids


def _check_layers(model, layers) -> list[int]:
    if layers is None:
        return list(range(model.cfg.n_layers))
    if isinstance(layers, (str, bytes, Tensor)) or not isinstance(layers, Sequence) or len(layers) == 0:
        raise TypeError(f"layers must be a non-empty list of ints, got {layers!r}")
    out = [check_layer(model, L) for L in layers]
    if len(set(out)) != len(out):
        raise ValueError(f"layers repeat: {out}")
    return out


class _PatchRows:
    """Edit: row r takes ``values[r]`` (broadcast over positions; the mask picks the placeholder)."""

    def __init__(self, values: Tensor) -> None:
        self.values = values  # [rows, d_model]

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        return self.values[:, None, :].to(acts.dtype).expand_as(acts).clone()


@dataclass(frozen=True)
class PatchscopeReading:
    """What the target prompt decodes from each source layer's hidden state: ``new_tokens[i]``
    (greedy) and ``texts[i]`` for ``layers[i]``, the probability of the first decoded token, and the
    logit lens's top token and probability for the same hidden state."""

    layers: tuple[int, ...]
    new_tokens: Int[Tensor, "layer new"]
    texts: tuple[str, ...]
    first_prob: Float[Tensor, " layer"]
    lens_token: Int[Tensor, " layer"]
    lens_text: tuple[str, ...]
    lens_prob: Float[Tensor, " layer"]
    source_position: int
    target_layers: tuple[int, ...]

    def rows(self) -> list[dict]:
        return [
            {
                "layer": L,
                "target_layer": Lt,
                "patchscope": self.texts[i],
                "patchscope_p": float(self.first_prob[i]),
                "logit_lens": self.lens_text[i],
                "logit_lens_p": float(self.lens_prob[i]),
            }
            for i, (L, Lt) in enumerate(zip(self.layers, self.target_layers))
        ]


def source_states(
    model, source: Int[Tensor, "1 pos"], layers: Sequence[int], position: int
) -> Float[Tensor, "layer d_model"]:
    """``resid_post.ℓ`` at ``position`` of the source prompt for every ℓ in ``layers``."""
    reg = HookRegistry(model)
    for L in layers:
        reg.probe(f"h{L}", f"resid_post.{L}", positions=[position])
    with torch.no_grad():
        reg.run(source, need_logits=False)
    return torch.stack([recorded(reg, f"h{L}")[0, 0] for L in layers], 0)


def patchscope(
    model,
    source: Union[str, Int[Tensor, "1 source_pos"]],
    *,
    position: int = -1,
    layers: Optional[Sequence[int]] = None,
    target: Union[str, Int[Tensor, "1 target_pos"]] = IDENTITY_PROMPT,
    placeholder: int = -1,
    target_layer: Optional[int] = None,
    max_new_tokens: int = 4,
) -> PatchscopeReading:
    """Decode the hidden state at ``position`` of ``source`` after each of ``layers`` (default all)
    by patching it into ``target`` at ``placeholder`` (default its last token) at ``target_layer``
    (default: the same layer) and generating ``max_new_tokens`` greedily."""
    src = _as_ids(model, source, "source")
    tgt = _as_ids(model, target, "target")
    pos = int(check_positions(position, 1, src.shape[1], "position")[0])
    ph = int(check_positions(placeholder, 1, tgt.shape[1], "placeholder")[0])
    layers = _check_layers(model, layers)
    targets = [check_layer(model, target_layer, "target_layer")] * len(layers) if target_layer is not None else layers
    check_int("max_new_tokens", max_new_tokens, min=1)
    h = source_states(model, src, layers, pos)
    n = len(layers)
    reg = HookRegistry(model)
    for Lt in sorted(set(targets)):
        rows = [i for i, t in enumerate(targets) if t == Lt]
        mask = torch.zeros(n, tgt.shape[1], dtype=torch.bool)
        mask[rows, ph] = True
        reg.steer(f"patch {Lt}", f"resid_post.{Lt}", _PatchRows(h), positions=mask)
    gen = reg.generate(tgt.expand(n, -1).clone(), max_new_tokens, stop_at_eos=False, return_logits=True)
    if gen.logits is None:
        raise RuntimeError("HookRegistry.generate(return_logits=True) returned no logits")
    first = gen.logits[:, 0].float().softmax(-1)
    new = gen.new_tokens
    with torch.no_grad():
        lens = resid_to_logits(model, h).float().softmax(-1)
    lens_p, lens_tok = lens.max(-1)
    return PatchscopeReading(
        layers=tuple(layers),
        new_tokens=new,
        texts=tuple("".join(token_strings(model, row.tolist())) for row in new),
        first_prob=first.gather(1, new[:, :1].to(first.device))[:, 0].cpu(),
        lens_token=lens_tok.cpu(),
        lens_text=tuple(token_strings(model, lens_tok.tolist())),
        lens_prob=lens_p.cpu(),
        source_position=pos,
        target_layers=tuple(targets),
    )


__all__ = ["IDENTITY_PROMPT", "PatchscopeReading", "patchscope", "source_states"]
