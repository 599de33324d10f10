"""The logit lens: read the model's running prediction off the residual stream of every layer.

**Logit lens** (nostalgebraist 2020): ``logits_L = softcap(LN_f(h_L) · W_U + b_U)``, exactly the model's
own readout (``workbench.readout.resid_to_logits``) applied to ``h_L = resid_post.L``, with the final
norm's statistics *recomputed* from ``h_L`` (never the scale cached for the last layer). At the last
layer this is the model's output, soft-cap included (Gemma-2: ``output_logits_soft_cap``).

The reference distribution of "KL to final" is the model's real output of the same run (the logits
the forward pass returns), so a readout that differed from the forward would show up as a nonzero KL
at the last layer instead of being hidden.

Residuals are read through ``HookRegistry`` probes at ``resid_post.L`` (probes read *after* any steer
at the same site), so the lens of a steered run shows how a steer at layer L changes the prediction
layer by layer.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..readout import resid_to_logits
from ..registry import HookRegistry
from ..tokens import Batch, token_strings
from ..validation import check_int

if TYPE_CHECKING:
    from .tuned import TunedLens

_PROBE_PREFIX = "_lens.resid_post."


# --------------------------------------------------------------------------- pure maths
def lens_logits(model, h: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
    """Logit lens of a residual: ``workbench.readout.resid_to_logits`` (an alias kept for readers of
    the lens; the readout is the only residual→logits of workbench)."""
    return resid_to_logits(model, h)


def kl_to_final(
    final_logits: Float[Tensor, "... d_vocab"], logits: Float[Tensor, "... d_vocab"]
) -> Float[Tensor, "..."]:
    """``KL(p_final ‖ p) = Σ_v p_final(v) (log p_final(v) − log p(v))`` in nats, per position."""
    if final_logits.shape != logits.shape:
        raise ValueError(f"kl_to_final needs equal shapes, got {tuple(final_logits.shape)} and {tuple(logits.shape)}")
    lp_final = final_logits.float().log_softmax(-1)
    lp = logits.float().log_softmax(-1)
    return (lp_final.exp() * (lp_final - lp)).sum(-1)


# --------------------------------------------------------------------------- reading residuals
def check_layers(model, layers: Optional[Sequence[int]]) -> list[int]:
    """Sorted distinct layers of ``model`` (negative counts from the end); None = every layer."""
    n = model.cfg.n_layers
    if layers is None:
        return list(range(n))
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise TypeError(f"layers must be a list of ints, got {type(layers).__name__} {layers!r:.60}")
    if len(layers) == 0:
        raise ValueError("layers is empty; pass at least one layer, or None for every layer")
    out = []
    for L in layers:
        check_int("layer", L)
        if not -n <= L < n:
            raise ValueError(f"layer {L} is not a layer of this model (valid: 0..{n - 1}, or negative from the end)")
        out.append(L % n)
    return sorted(set(out))


def check_tokens(model, tokens: Tensor, what: str = "tokens") -> Tensor:
    """Token ids must be integers inside the vocabulary."""
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise TypeError(f"{what} must be integer token ids, got dtype {tokens.dtype}")
    if tokens.numel() == 0:
        raise ValueError(f"{what} is empty (shape {tuple(tokens.shape)})")
    V = model.cfg.d_vocab
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= V:
        raise ValueError(f"{what} holds ids {lo}..{hi}, outside the vocabulary 0..{V - 1}")
    return tokens


def _as_unpadded_batch(reg: HookRegistry, inputs) -> Batch:
    batch = reg.as_batch(inputs)
    if not bool((batch.attention_mask == 1).all()):
        raise ValueError(
            "the lens needs inputs of equal token length (no padding); pass one prompt, or prompts of equal length"
        )
    check_tokens(reg.model, batch.tokens)
    return batch


def _read(reg: HookRegistry, batch: Batch, layers: list[int], *, want_logits: bool) -> tuple[Tensor, Optional[Tensor]]:
    """One forward with temporary probes at ``resid_post`` of ``layers`` (removed again, even on
    error); returns the stacked residuals and, with ``want_logits``, the run's own output logits."""
    names = [f"{_PROBE_PREFIX}{L}" for L in layers]
    try:
        for name, L in zip(names, layers):
            reg.probe(name, f"resid_post.{L}", when="after")
        with torch.no_grad():
            logits = reg.run(batch, need_logits=want_logits)
        records = [reg.records[name] for name in names]
        if not all(isinstance(r, Tensor) for r in records):
            raise ValueError("the lens read rows of different lengths; pass prompts of equal token length")
        return torch.stack(records, 0), logits  # type: ignore[arg-type]
    finally:
        for name in names:
            try:
                reg.remove(name)
            except KeyError:  # never registered (the error came earlier)
                pass


def residuals(
    model,
    inputs,
    layers: Optional[Sequence[int]] = None,
    *,
    registry: Optional[HookRegistry] = None,
) -> Float[Tensor, "layer batch pos d_model"]:
    """``resid_post`` of each requested layer, read by registry probes (after any steer there).

    With ``registry`` given, its enabled steers stay active, so this is the residual of a steered run;
    the temporary probes are removed again even on error. Inputs must have equal lengths (no padding)."""
    layers = check_layers(model, layers)
    reg = registry if registry is not None else HookRegistry(model)
    return _read(reg, _as_unpadded_batch(reg, inputs), layers, want_logits=False)[0]


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class LensResult:
    """What a lens read: per row, layer and position, the top-k tokens and the targets' fate.

    Shapes: ``top_ids``/``top_probs`` ``[batch, layer, pos, k]``; ``target_probs``/``target_ranks``
    ``[batch, layer, pos, n_targets]`` (rank 0 = the most likely token); ``kl_to_final``
    ``[batch, layer, pos]`` (nats, against the model's output of the same run)."""

    layers: list[int]
    tokens: list[list[str]]
    top_ids: Int[Tensor, "batch layer pos k"]
    top_tokens: list[list[list[list[str]]]]
    top_probs: Float[Tensor, "batch layer pos k"]
    target_ids: list[int]
    target_tokens: list[str]
    target_probs: Float[Tensor, "batch layer pos n_targets"]
    target_ranks: Int[Tensor, "batch layer pos n_targets"]
    kl_to_final: Float[Tensor, "batch layer pos"]
    lens: str = "logit"

    def to_frame(self, row: int = 0):
        """A long pandas table: one line per (layer, position) of ``row``."""
        import pandas as pd

        check_int("row", row, min=0, max=len(self.tokens) - 1)
        recs = []
        for li, L in enumerate(self.layers):
            for p, tok in enumerate(self.tokens[row]):
                r = {
                    "layer": L,
                    "pos": p,
                    "token": tok,
                    "top": self.top_tokens[row][li][p][0],
                    "p_top": float(self.top_probs[row, li, p, 0]),
                    "kl_to_final": float(self.kl_to_final[row, li, p]),
                }
                for ti, t in enumerate(self.target_tokens):
                    r[f"p[{t}]"] = float(self.target_probs[row, li, p, ti])
                    r[f"rank[{t}]"] = int(self.target_ranks[row, li, p, ti])
                recs.append(r)
        return pd.DataFrame(recs)


def target_ids(model, targets: Optional[Sequence[Union[str, int]]]) -> list[int]:
    """Token ids of ``targets``: each a single-token string (e.g. ``" Paris"``, leading space
    included) or an int id. A string that is not exactly one token raises, naming its tokens."""
    if targets is None:
        return []
    if isinstance(targets, (str, int)):
        targets = [targets]
    ids = []
    V = model.cfg.d_vocab
    for t in targets:
        if isinstance(t, int) and not isinstance(t, bool):
            if not 0 <= t < V:
                raise ValueError(f"target id {t} is outside the vocabulary 0..{V - 1}")
            ids.append(t)
        elif isinstance(t, str):
            if model.tokenizer is None:
                raise ValueError("this model has no tokenizer; give targets as token ids")
            enc = model.tokenizer(t, add_special_tokens=False)["input_ids"]
            if len(enc) != 1:
                raise ValueError(
                    f"target {t!r} is {len(enc)} tokens {token_strings(model, enc)}; a target must be one token "
                    "(mind the leading space)"
                )
            ids.append(int(enc[0]))
        else:
            raise TypeError(f"a target is a single-token string or an int id, got {t!r}")
    return ids


def read_lens(
    model,
    resid: Float[Tensor, "layer batch pos d_model"],
    layers: Sequence[int],
    input_tokens: Int[Tensor, "batch pos"],
    *,
    final_logits: Optional[Float[Tensor, "batch pos d_vocab"]] = None,
    k: int = 5,
    targets: Optional[Sequence[Union[str, int]]] = None,
    translator: Optional["TunedLens"] = None,
) -> LensResult:
    """Turn residuals into a ``LensResult`` (logit lens, or tuned lens when ``translator`` is given).

    ``final_logits`` is the reference of the KL: the model's output of the run the residuals come
    from. Without it, ``layers`` must hold the last layer, whose readout is that output."""
    check_int("k", k, min=1, max=model.cfg.d_vocab)
    tids = target_ids(model, targets)
    n_layers = model.cfg.n_layers
    layers = list(layers)
    if resid.ndim != 4 or resid.shape[0] != len(layers) or resid.shape[-1] != model.cfg.d_model:
        raise ValueError(
            f"resid must be [len(layers)={len(layers)}, batch, pos, d_model={model.cfg.d_model}], "
            f"got {tuple(resid.shape)}"
        )
    if tuple(input_tokens.shape) != tuple(resid.shape[1:3]):
        raise ValueError(f"input_tokens {tuple(input_tokens.shape)} do not match resid {tuple(resid.shape[1:3])}")
    if translator is not None:
        translator.check(model)
    with torch.no_grad():
        if final_logits is None:
            if (n_layers - 1) not in layers:
                raise ValueError(
                    f"read_lens needs final_logits, or the last layer ({n_layers - 1}) among `layers` (its readout "
                    "is the model's output)"
                )
            final_logits = resid_to_logits(model, resid[layers.index(n_layers - 1)])
        tops, topp, tp, tr, kls = [], [], [], [], []
        for li, L in enumerate(layers):
            h = resid[li]
            logits = translator.logits(model, h, L) if translator is not None else resid_to_logits(model, h)
            probs = logits.float().softmax(-1)
            p, i = probs.topk(k, -1)
            tops.append(i)
            topp.append(p)
            if tids:
                tprob = probs[..., tids]
                tp.append(tprob)
                # rank = number of tokens strictly more likely than the target (0 = top-1)
                tr.append(torch.stack([(probs > tprob[..., j : j + 1]).sum(-1) for j in range(len(tids))], -1))
            kls.append(kl_to_final(final_logits, logits))
    B, T = input_tokens.shape
    top_ids = torch.stack(tops, 1).cpu()
    top_tokens = [
        [[token_strings(model, top_ids[b, li, p].tolist()) for p in range(T)] for li in range(len(layers))]
        for b in range(B)
    ]
    empty = torch.zeros(B, len(layers), T, 0)
    return LensResult(
        layers=layers,
        tokens=[token_strings(model, input_tokens[b].tolist()) for b in range(B)],
        top_ids=top_ids,
        top_tokens=top_tokens,
        top_probs=torch.stack(topp, 1).cpu(),
        target_ids=tids,
        target_tokens=token_strings(model, tids),
        target_probs=torch.stack(tp, 1).cpu() if tids else empty,
        target_ranks=torch.stack(tr, 1).cpu() if tids else empty.long(),
        kl_to_final=torch.stack(kls, 1).cpu(),
        lens="tuned" if translator is not None else "logit",
    )


def logit_lens(
    model,
    inputs,
    *,
    layers: Optional[Sequence[int]] = None,
    k: int = 5,
    targets: Optional[Sequence[Union[str, int]]] = None,
    registry: Optional[HookRegistry] = None,
    tuned: Optional["TunedLens"] = None,
) -> LensResult:
    """Logit lens (nostalgebraist 2020) at ``resid_post`` of every layer (or ``layers``): top-``k``
    tokens with probabilities, the probability and rank of each target, and the KL to the model's
    output of the same forward pass. The final norm is recomputed for each layer's residual.

    ``registry``: a ``HookRegistry`` whose enabled steers shape the run (the lens of a steered run);
    ``tuned``: a ``TunedLens`` to read through instead (Belrose et al. 2023)."""
    want = check_layers(model, layers)
    check_int("k", k, min=1, max=model.cfg.d_vocab)
    tids = target_ids(model, targets)
    if tuned is not None:
        tuned.check(model)
    reg = registry if registry is not None else HookRegistry(model)
    batch = _as_unpadded_batch(reg, inputs)
    resid, final = _read(reg, batch, want, want_logits=True)
    return read_lens(model, resid, want, batch.tokens, final_logits=final, k=k, targets=tids, translator=tuned)


__all__ = [
    "LensResult",
    "check_layers",
    "check_tokens",
    "kl_to_final",
    "lens_logits",
    "logit_lens",
    "read_lens",
    "residuals",
    "target_ids",
]
