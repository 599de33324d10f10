"""The logit lens: read the model's running prediction off the residual stream of every layer.

**Logit lens** (nostalgebraist 2020): ``logits_L = softcap(LN_f(h_L) · W_U + b_U)``, exactly the model's
own readout (``workbench.readout.resid_to_logits``) applied to ``h_L = resid_post.L``, with the final
norm's statistics *recomputed* from ``h_L`` (never the scale cached for the last layer). At the last
layer this is the model's output, soft-cap included (Gemma-2: ``output_logits_soft_cap``; the
family tests compare it with ``model(tokens)``).

**Long texts.** Only the layers and positions asked for are read: the forward pass stops after the
deepest asked layer (the last one when the KL is wanted) and after the last asked position (causal
attention: later tokens cannot change earlier positions), and probes keep only the asked positions.
Without a ``registry`` the text is fed through TransformerLens' KV cache ``forward_chunk`` positions
at a time (attention memory ``chunk × T`` instead of ``T²``). The readout then runs over chunks of
``chunk_size`` (row, position) pairs, one layer at a time, so no ``[layer, pos, vocab]`` or
``[pos, vocab]`` tensor is ever built: peak memory is the residuals asked for plus a few
``chunk_size × d_vocab`` buffers. Per chunk only what was asked is computed from the logits:

* the normaliser ``log Z = log Σ_v exp(logit_v)`` (one pass; a row that under/overflows is redone
  with the max-shifted ``logsumexp``); a probability is ``exp(logit − log Z)`` — no softmax tensor;
* top-k: ``topk`` of the logits (the order of the probabilities), then their probabilities;
* targets: the targets' logits and probabilities, and rank = #tokens with a larger logit;
* KL to final (``kl=True``, the one quantity that needs the whole final distribution ``p_f``):
  ``KL(p_f ‖ p_L) = (Σ p_f l_f − log Z_f Σ p_f) − (Σ p_f l_L − log Z_L Σ p_f)`` — two dot products
  per row with the final distribution of the same positions (computed once per chunk), exactly 0 at
  the last layer (both terms are the same numbers).

The reference distribution of "KL to final" is the model's output distribution of the same run:
``resid_to_logits`` of the last layer's residual, which is what the forward pass returns.

Residuals are read through ``HookRegistry`` probes at ``resid_post.L`` (probes read *after* any steer
at the same site), so the lens of a steered run shows how a steer at layer L changes the prediction
layer by layer (with a ``registry``, the whole text is one forward pass, so its steers see absolute
positions as usual).

This module is longer than 400 lines on purpose: the chunked readout and its modes (full, top-k only,
targets only, KL optional) share one pass over the residuals and must agree with each other exactly.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..backends import as_backend
from ..readout import final_norm, resid_to_logits, unembed_normed
from ..registry import HookRegistry
from ..tokens import Batch, token_strings
from ..validation import check_bool, check_int

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


def check_positions(positions: Optional[Union[int, Sequence[int]]], seq_len: int) -> list[int]:
    """Sorted distinct positions ``0..seq_len-1`` (negative counts from the end); None = every one."""
    if positions is None:
        return list(range(seq_len))
    if isinstance(positions, int) and not isinstance(positions, bool):
        positions = [positions]
    if isinstance(positions, (str, bytes)) or not isinstance(positions, Sequence):
        raise TypeError(f"positions must be an int or a list of ints, got {type(positions).__name__}")
    if len(positions) == 0:
        raise ValueError("positions is empty; pass at least one position, or None for every position")
    out = []
    for p in positions:
        check_int("position", p)
        if not -seq_len <= p < seq_len:
            raise ValueError(f"position {p} is outside the text of {seq_len} tokens (0..{seq_len - 1}, or negative)")
        out.append(p % seq_len)
    return sorted(set(out))


def _read(
    reg: HookRegistry, batch: Batch, layers: list[int], positions: Optional[list[int]] = None
) -> Float[Tensor, "layer batch pos d_model"]:
    """One forward with temporary probes at ``resid_post`` of ``layers`` keeping ``positions`` (None:
    all), removed again even on error. The pass stops after the deepest probe."""
    names = [f"{_PROBE_PREFIX}{L}" for L in layers]
    try:
        for name, L in zip(names, layers):
            reg.probe(name, f"resid_post.{L}", when="after", positions="all" if positions is None else positions)
        with torch.no_grad():
            reg.run(batch, need_logits=False)
        records = [reg.records[name] for name in names]
        if not all(isinstance(r, Tensor) for r in records):
            raise ValueError("the lens read rows of different lengths; pass prompts of equal token length")
        return torch.stack(records, 0)  # type: ignore[arg-type]
    finally:
        for name in names:
            try:
                reg.remove(name)
            except KeyError:  # never registered (the error came earlier)
                pass


def _read_chunked(
    model, tokens: Int[Tensor, "batch pos"], layers: list[int], positions: list[int], forward_chunk: int
) -> Float[Tensor, "layer batch n_positions d_model"]:
    """``resid_post`` of ``layers`` at ``positions``, feeding ``tokens`` ``forward_chunk`` positions at
    a time through a KV cache: each chunk attends to the cached keys and values of the earlier ones
    (the same forward pass, attention ``chunk × T`` instead of ``T × T``). Reading up to the last
    layer uses ``workbench.generation.Decoder`` (fused attention); a shallower read runs
    TransformerLens' forward with its KV cache and ``stop_at_layer``. Only positions up to the last
    asked one are fed."""
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

    from ..generation import Decoder

    cfg = model.cfg
    tokens = tokens[:, : positions[-1] + 1].to(cfg.device)
    B, T = tokens.shape
    if layers[-1] == cfg.n_layers - 1:
        dec = Decoder(model, B, max_positions=T)

        def step(chunk: Tensor) -> None:
            dec.step(chunk, torch.ones_like(chunk))
    else:
        cache = TransformerLensKeyValueCache.init_cache(cfg, cfg.device, B)

        def step(chunk: Tensor) -> None:
            model(chunk, attention_mask=torch.ones_like(chunk), past_kv_cache=cache, stop_at_layer=layers[-1] + 1)

    want = torch.tensor(positions, device=cfg.device)
    reg = HookRegistry(model)
    for L in layers:
        reg.probe(f"{_PROBE_PREFIX}{L}", f"resid_post.{L}", when="after")
    parts: list[Tensor] = []
    with torch.no_grad(), reg:
        for a in range(0, T, forward_chunk):
            chunk = tokens[:, a : a + forward_chunk]
            step(chunk)
            sel = want[(want >= a) & (want < a + chunk.shape[1])] - a
            if sel.numel():
                parts.append(torch.stack([reg.records[f"{_PROBE_PREFIX}{L}"][:, sel] for L in layers], 0))
            reg.records.clear()
    return torch.cat(parts, 2)


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
    return _read(reg, _as_unpadded_batch(reg, inputs), layers)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class LensResult:
    """What a lens read: per row, layer and read position, the top-k tokens and the targets' fate.

    Shapes: ``top_ids``/``top_probs`` ``[batch, layer, pos, k]`` (k = 0 in a targets-only read);
    ``target_probs``/``target_ranks`` ``[batch, layer, pos, n_targets]`` (rank 0 = the most likely
    token); ``kl_to_final`` ``[batch, layer, pos]`` (nats, against the model's output of the same
    run) or None when it was not asked for. ``pos`` runs over ``positions`` (the absolute positions
    read); ``tokens[b]`` are the input tokens at those positions."""

    layers: list[int]
    tokens: list[list[str]]
    top_ids: Int[Tensor, "batch layer pos k"]
    top_tokens: list[list[list[list[str]]]]
    top_probs: Float[Tensor, "batch layer pos k"]
    target_ids: list[int]
    target_tokens: list[str]
    target_probs: Float[Tensor, "batch layer pos n_targets"]
    target_ranks: Int[Tensor, "batch layer pos n_targets"]
    kl_to_final: Optional[Float[Tensor, "batch layer pos"]]
    lens: str = "logit"
    positions: Optional[list[int]] = None  # absolute positions read (None: 0..len(tokens[0])-1)

    @property
    def read_positions(self) -> list[int]:
        return list(self.positions) if self.positions is not None else list(range(len(self.tokens[0])))

    def to_frame(self, row: int = 0):
        """A long pandas table: one line per (layer, read position) of ``row``."""
        import pandas as pd

        check_int("row", row, min=0, max=len(self.tokens) - 1)
        recs = []
        pos = self.read_positions
        for li, L in enumerate(self.layers):
            for pi, tok in enumerate(self.tokens[row]):
                r = {"layer": L, "pos": pos[pi], "token": tok}
                if self.top_ids.shape[-1]:
                    r["top"] = self.top_tokens[row][li][pi][0]
                    r["p_top"] = float(self.top_probs[row, li, pi, 0])
                if self.kl_to_final is not None:
                    r["kl_to_final"] = float(self.kl_to_final[row, li, pi])
                for ti, t in enumerate(self.target_tokens):
                    r[f"p[{t}]"] = float(self.target_probs[row, li, pi, ti])
                    r[f"rank[{t}]"] = int(self.target_ranks[row, li, pi, ti])
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


# --------------------------------------------------------------------------- chunked readout
_TINY = 1e-30  # a sum of exponentials below this (or not finite) is redone with the shifted logsumexp


def _log_normaliser(logits: Float[Tensor, "c v"], buf: Float[Tensor, "c v"]) -> Float[Tensor, " c"]:
    """``log Σ_v exp(logits)`` per row in one exp pass (into ``buf``); rows whose sum under- or
    overflows float32 are recomputed with ``torch.logsumexp`` (which subtracts the max first)."""
    torch.exp(logits, out=buf)
    total = buf.sum(-1)
    lse = total.log()
    bad = ~(torch.isfinite(total) & (total > _TINY))
    if bool(bad.any()):
        lse[bad] = logits[bad].logsumexp(-1)
    return lse


def _rowdot(a: Float[Tensor, "c v"], b: Float[Tensor, "c v"], buf: Float[Tensor, "c v"]) -> Float[Tensor, " c"]:
    """``Σ_v a[r, v] b[r, v]`` per row (product into ``buf``, then a row sum)."""
    return torch.mul(a, b, out=buf).sum(-1)


def _unembed_weight(model) -> Optional[Tensor]:
    """``W_U.T`` as a view for ``readout.unembed_normed`` (no copy; TransformerLens' ``Unembed``
    copies the whole ``W_U`` on every call), or None when the unembedding carries hooks, so that
    its module runs and they fire."""
    from transformer_lens.hook_points import HookPoint

    u = model.unembed
    parts = (u, getattr(u, "hook_in", None), getattr(u, "hook_out", None))
    if any(p is None or p._forward_hooks or p._forward_pre_hooks for p in parts) or any(
        type(p) is not HookPoint for p in parts[1:]
    ):
        return None
    return u.W_U.T


def _readout(
    model, h: Float[Tensor, "rows d_model"], weight_t: Optional[Tensor], out: Optional[Tensor] = None
) -> Float[Tensor, "rows d_vocab"]:
    """``resid_to_logits(model, h)`` through the readout's own pieces (final norm, unembedding with
    ``weight_t`` into ``out`` when given, soft-cap)."""
    normed = final_norm(model, h.to(model.cfg.dtype))
    return unembed_normed(model, normed, weight_t=weight_t, out=out if weight_t is not None else None)


def _topk(logits: Float[Tensor, "c v"], k: int) -> tuple[Tensor, Tensor]:
    """``logits.topk(k)`` in two cheap passes when the vocabulary splits into equal blocks: the k
    largest values lie in the k blocks with the largest maxima (a value outside them has k block
    maxima, k other values, at least as large), so ``topk`` runs on those ``k · block`` values."""
    c, V = logits.shape
    block = next((b for b in (1024, 512, 256) if V % b == 0 and V // b >= 4 * k), None)
    if block is None:
        return logits.topk(k, -1)
    blocks = logits.view(c, V // block, block)
    best = blocks.amax(-1).topk(k, -1).indices  # [c, k]
    cand = blocks.gather(1, best[:, :, None].expand(-1, -1, block)).view(c, k * block)
    values, idx = cand.topk(k, -1)
    return values, best.gather(1, idx // block) * block + idx % block


@dataclass(frozen=True)
class _Stats:
    top_ids: Tensor
    top_probs: Tensor
    target_probs: Tensor
    target_ranks: Tensor
    kl: Optional[Tensor]


def _lens_stats(
    model,
    resid: Float[Tensor, "layer rows d_model"],
    layers: list[int],
    *,
    k: int,
    tids: list[int],
    final_resid: Optional[Float[Tensor, "rows d_model"]],
    final_logits: Optional[Float[Tensor, "rows d_vocab"]],
    kl: bool,
    translator: Optional["TunedLens"],
    chunk_size: int,
) -> _Stats:
    """The lens statistics of ``resid[li, r]`` for every layer and row, ``chunk_size`` rows at a
    time (see the module docstring for what each one needs). Besides the layer's logits, at most
    three ``chunk × d_vocab`` tensors live at once: a scratch buffer and, for the KL, the final
    logits and distribution of the chunk."""
    n_l, R = resid.shape[:2]
    V = model.cfg.d_vocab
    dev = model.cfg.device
    last = model.cfg.n_layers - 1
    top_ids = torch.zeros(n_l, R, k, dtype=torch.long)
    top_probs = torch.zeros(n_l, R, k)
    t_probs = torch.zeros(n_l, R, len(tids))
    t_ranks = torch.zeros(n_l, R, len(tids), dtype=torch.long)
    kls = torch.zeros(n_l, R) if kl else None
    tid_t = torch.tensor(tids, dtype=torch.long, device=dev)
    buf = torch.empty(min(chunk_size, R), V, device=dev)
    layer_buf = torch.empty_like(buf)  # the layer's logits (the KL's final logits have their own)
    weight_t = _unembed_weight(model)
    for a in range(0, R, chunk_size):
        rows = slice(a, min(a + chunk_size, R))
        b = buf[: rows.stop - rows.start]
        lf = pf = ref = mass = None
        if kl:
            if final_logits is not None:
                lf = final_logits[rows].to(dev).float()
            else:
                lf = _readout(model, final_resid[rows], weight_t).float()  # type: ignore[index]
            lse_f = _log_normaliser(lf, b)
            pf = (lf - lse_f[:, None]).exp_()
            mass = pf.sum(-1)
            ref = _rowdot(pf, lf, b) - lse_f * mass
        for li, L in enumerate(layers):
            if L == last and lf is not None and translator is None and final_logits is None:
                logits = lf  # the last layer's readout is the final distribution's own logits
            else:
                h = resid[li, rows]
                if translator is not None:  # tuned lens: the readout of h + A_L h + b_L (checked up front)
                    h = translator.translate(h, L)
                logits = _readout(model, h, weight_t, layer_buf[: rows.stop - rows.start]).float()
            if k:
                top_l, top_i = _topk(logits, k)
            if tids:
                tgt = logits.index_select(1, tid_t)
                for j in range(len(tids)):
                    torch.gt(logits, tgt[:, j : j + 1], out=b)  # 1.0 where a token is more likely
                    t_ranks[li, rows, j] = b.sum(-1).long().cpu()
            if kl:
                here = _rowdot(pf, logits, b)  # type: ignore[arg-type]
            lse = _log_normaliser(logits, b)
            if k:
                top_ids[li, rows] = top_i.cpu()
                top_probs[li, rows] = (top_l - lse[:, None]).exp().cpu()
            if tids:
                t_probs[li, rows] = (tgt - lse[:, None]).exp().cpu()
            if kl:
                kls[li, rows] = (ref - (here - lse * mass)).cpu()  # type: ignore[index,operator]
    return _Stats(top_ids, top_probs, t_probs, t_ranks, kls)


def _decode_top(model, top_ids: Int[Tensor, "batch layer pos k"]) -> list[list[list[list[str]]]]:
    """Token strings of every top id, decoding each distinct id once."""
    uniq = torch.unique(top_ids).tolist()
    text = dict(zip(uniq, token_strings(model, uniq)))
    return [[[[text[i] for i in cell] for cell in layer] for layer in row] for row in top_ids.tolist()]


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
    kl: bool = True,
    final_resid: Optional[Float[Tensor, "batch pos d_model"]] = None,
    positions: Optional[Sequence[int]] = None,
    chunk_size: int = 256,
) -> LensResult:
    """Turn residuals into a ``LensResult`` (logit lens, or tuned lens when ``translator`` is given),
    in chunks of ``chunk_size`` (row, position) pairs.

    The KL's reference (``kl=True``) is the model's output of the run the residuals come from: the
    readout of ``final_resid`` (the last layer's residual), or ``final_logits``; without either,
    ``layers`` must hold the last layer. ``positions`` labels the residuals' position axis (default
    ``0..pos-1``)."""
    check_int("k", k, min=0, max=model.cfg.d_vocab)
    check_bool("kl", kl)
    check_int("chunk_size", chunk_size, min=1)
    tids = target_ids(model, targets)
    if not k and not tids and not kl:
        raise ValueError("nothing to read: k=0, no targets and kl=False; ask for top-k, targets or the KL")
    n_layers = model.cfg.n_layers
    layers = list(layers)
    if resid.ndim != 4 or resid.shape[0] != len(layers) or resid.shape[-1] != model.cfg.d_model:
        raise ValueError(
            f"resid must be [len(layers)={len(layers)}, batch, pos, d_model={model.cfg.d_model}], "
            f"got {tuple(resid.shape)}"
        )
    if tuple(input_tokens.shape) != tuple(resid.shape[1:3]):
        raise ValueError(f"input_tokens {tuple(input_tokens.shape)} do not match resid {tuple(resid.shape[1:3])}")
    B, P = input_tokens.shape
    if positions is not None and len(positions) != P:
        raise ValueError(f"positions has {len(positions)} entries but the residuals have {P} positions")
    if final_logits is not None and tuple(final_logits.shape) != (B, P, model.cfg.d_vocab):
        raise ValueError(f"final_logits must be [{B}, {P}, {model.cfg.d_vocab}], got {tuple(final_logits.shape)}")
    if translator is not None:
        translator.check(model)
    if final_resid is not None and tuple(final_resid.shape) != (B, P, model.cfg.d_model):
        raise ValueError(f"final_resid must be [{B}, {P}, {model.cfg.d_model}], got {tuple(final_resid.shape)}")
    if kl and final_logits is None and final_resid is None:
        if (n_layers - 1) not in layers:
            raise ValueError(
                f"read_lens needs final_logits or final_resid, or the last layer ({n_layers - 1}) among `layers` "
                "(its readout is the model's output), for kl=True"
            )
        final_resid = resid[layers.index(n_layers - 1)]
    with torch.no_grad():
        st = _lens_stats(
            model,
            resid.reshape(len(layers), B * P, -1),
            layers,
            k=k,
            tids=tids,
            final_resid=None if final_resid is None else final_resid.reshape(B * P, -1),
            final_logits=None if final_logits is None else final_logits.reshape(B * P, -1),
            kl=kl,
            translator=translator,
            chunk_size=chunk_size,
        )

    def per_row(x: Tensor) -> Tensor:  # [layer, B*P, ...] -> [B, layer, P, ...]
        return x.view(len(layers), B, P, *x.shape[2:]).transpose(0, 1).contiguous()

    top_ids = per_row(st.top_ids)
    return LensResult(
        layers=layers,
        tokens=[token_strings(model, input_tokens[b].tolist()) for b in range(B)],
        top_ids=top_ids,
        top_tokens=_decode_top(model, top_ids) if k else [[[[] for _ in range(P)] for _ in layers] for _ in range(B)],
        top_probs=per_row(st.top_probs),
        target_ids=tids,
        target_tokens=token_strings(model, tids),
        target_probs=per_row(st.target_probs),
        target_ranks=per_row(st.target_ranks),
        kl_to_final=None if st.kl is None else per_row(st.kl),
        lens="tuned" if translator is not None else "logit",
        positions=list(positions) if positions is not None else None,
    )


def logit_lens(
    model,
    inputs,
    *,
    layers: Optional[Sequence[int]] = None,
    positions: Optional[Union[int, Sequence[int]]] = None,
    k: int = 5,
    targets: Optional[Sequence[Union[str, int]]] = None,
    kl: bool = True,
    registry: Optional[HookRegistry] = None,
    tuned: Optional["TunedLens"] = None,
    chunk_size: int = 256,
    forward_chunk: int = 512,
) -> LensResult:
    """Logit lens (nostalgebraist 2020) at ``resid_post`` of every layer (or ``layers``) and every
    position (or ``positions``, negative from the end): top-``k`` tokens with probabilities, the
    probability and rank of each target, and (``kl=True``) the KL to the model's output of the same
    forward pass. The final norm is recomputed for each layer's residual.

    Modes: ``k=0`` with ``targets`` reads only the targets; ``kl=False`` skips the final
    distribution (and, with shallow ``layers``, the rest of the forward pass). ``chunk_size`` bounds
    the (row, position) pairs unembedded at once (memory ≈ a few ``chunk_size × d_vocab`` floats);
    ``forward_chunk`` the positions per forward chunk (without ``registry``).

    ``registry``: a ``HookRegistry`` whose enabled steers shape the run (the lens of a steered run;
    one forward pass over the whole text); ``tuned``: a ``TunedLens`` to read through instead
    (Belrose et al. 2023)."""
    want = check_layers(model, layers)
    check_int("k", k, min=0, max=model.cfg.d_vocab)
    check_bool("kl", kl)
    check_int("chunk_size", chunk_size, min=1)
    check_int("forward_chunk", forward_chunk, min=1)
    tids = target_ids(model, targets)
    if not k and not tids and not kl:
        raise ValueError("nothing to read: k=0, no targets and kl=False; ask for top-k, targets or the KL")
    if tuned is not None:
        tuned.check(model)
    reg = registry if registry is not None else HookRegistry(model)
    batch = _as_unpadded_batch(reg, inputs)
    pos = check_positions(positions, batch.tokens.shape[1])
    read = sorted(set(want) | ({model.cfg.n_layers - 1} if kl else set()))
    chunked = as_backend(model).decoder_blocker is None  # TransformerLens' KV cache (a bridge: one plain pass)
    if registry is None and chunked and getattr(model.cfg, "attention_dir", "causal") == "causal":
        resid = _read_chunked(model, batch.tokens, read, pos, forward_chunk)
    else:  # a user's steers see absolute positions of one pass; bidirectional attention cannot be chunked
        resid = _read(reg, batch, read, pos)
    final_resid = resid[read.index(model.cfg.n_layers - 1)] if kl else None
    return read_lens(
        model,
        resid[[read.index(L) for L in want]],
        want,
        batch.tokens[:, pos],
        k=k,
        targets=tids,
        translator=tuned,
        kl=kl,
        final_resid=final_resid,
        positions=pos,
        chunk_size=chunk_size,
    )


__all__ = [
    "LensResult",
    "check_layers",
    "check_positions",
    "check_tokens",
    "kl_to_final",
    "lens_logits",
    "logit_lens",
    "read_lens",
    "residuals",
    "target_ids",
]
