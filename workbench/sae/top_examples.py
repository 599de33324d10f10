"""Top-activating examples of SAE features, collected in one streaming pass over a corpus.

An *example* is a block of ``example_len`` consecutive positions of a token row (the whole row by
default). For every feature ``i`` the ``k`` examples with the largest ``max_t f_i(x_t)`` are kept
with a running top-k: each batch proposes one candidate per (row, block) and feature, merged with
the current top-k by ``topk`` over the concatenation. Memory is bounded by
``d_sae × (k + batch) × window`` per SAE, whatever the corpus size. Besides the top examples the
pass counts firings and fills a log-spaced activation histogram per feature.

These examples are the input of the input score ``S_in`` (Arad, Mueller & Belinkov 2025; see
:mod:`workbench.sae.scores`) and of the feature dashboards.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union, cast

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..artifacts import load_tensors, save_tensors
from ..registry import HookRegistry
from ..validation import check_bool, check_int
from .loading import sae_site
from .steering import check_sae

N_TOP_EXAMPLES = 100
HIST_EDGES = torch.logspace(-3, 4, 57)  # 8 log-spaced bins per decade for activations in [1e-3, 1e4]
TOP_EXAMPLES_KIND = "sae_top_examples"
_TENSORS = ("values", "example", "row", "position", "token", "fire_count", "hist_counts", "tokens", "hist_edges")
_META = ("n_tokens", "example_len", "skip_positions", "window_before", "window_after")


@dataclass
class TopExamples:
    """Streaming summary of one SAE's features over a corpus of token rows ``[n_rows, T]``.

    Example ``e`` is block ``e % blocks`` of row ``e // blocks``. For each feature, the ``k``
    examples with the largest max activation are kept, sorted descending, with the position and
    token of the max and the activations in a window around it (NaN outside the row). Positions
    ``< skip_positions`` are ignored (SmolLM2's position 0 is an attention sink)."""

    values: Float[Tensor, "d_sae k"]
    example: Int[Tensor, "d_sae k"]
    row: Int[Tensor, "d_sae k"]
    position: Int[Tensor, "d_sae k"]
    token: Int[Tensor, "d_sae k"]
    window: Float[Tensor, "d_sae k w"]
    fire_count: Int[Tensor, " d_sae"]
    hist_counts: Int[Tensor, "d_sae bins"]
    tokens: Int[Tensor, "n_rows T"]
    n_tokens: int
    example_len: int
    skip_positions: int
    window_before: int
    window_after: int
    hist_edges: Tensor = field(default_factory=lambda: HIST_EDGES.clone())

    @property
    def valid(self) -> Bool[Tensor, "d_sae k"]:
        return self.values > 0

    @property
    def n_examples(self) -> Int[Tensor, " d_sae"]:
        return self.valid.sum(1)

    @property
    def max_activation(self) -> Float[Tensor, " d_sae"]:
        """Each feature's largest activation over the corpus (0 for features that never fire)."""
        return self.values[:, 0].clamp_min(0)

    @property
    def fire_frequency(self) -> Float[Tensor, " d_sae"]:
        return self.fire_count.double().div(max(self.n_tokens, 1)).float()

    def save(self, path: Union[str, Path]) -> Path:
        """Write ``top_examples.safetensors`` + ``top_examples.json`` into folder ``path`` (artifact
        kind ``sae_top_examples``). Windows are stored as float16 with a validity mask for their NaNs."""
        tensors = {k: getattr(self, k) for k in _TENSORS}
        finite = torch.isfinite(self.window)
        tensors["window"] = torch.where(finite, self.window, torch.zeros_like(self.window)).to(torch.float16)
        tensors["window_valid"] = finite
        meta = {k: int(getattr(self, k)) for k in _META}
        save_tensors(Path(path) / "top_examples", tensors, meta, kind=TOP_EXAMPLES_KIND, version=1)
        return Path(path)

    @classmethod
    def load(cls, path: Union[str, Path]) -> "TopExamples":
        """Read what :meth:`save` wrote into folder ``path``."""
        t, meta = load_tensors(
            Path(path) / "top_examples",
            kind=TOP_EXAMPLES_KIND,
            required_tensors=(*_TENSORS, "window", "window_valid"),
            required_meta=_META,
        )
        valid = t.pop("window_valid").bool()
        w = t.pop("window").float()
        window = torch.where(valid, w, torch.full_like(w, float("nan")))
        return cls(
            values=t["values"],
            example=t["example"],
            row=t["row"],
            position=t["position"],
            token=t["token"],
            window=window,
            fire_count=t["fire_count"],
            hist_counts=t["hist_counts"],
            tokens=t["tokens"],
            n_tokens=int(meta["n_tokens"]),
            example_len=int(meta["example_len"]),
            skip_positions=int(meta["skip_positions"]),
            window_before=int(meta["window_before"]),
            window_after=int(meta["window_after"]),
            hist_edges=t["hist_edges"],
        )


class _TopKAccumulator:
    def __init__(self, d_sae: int, k: int, before: int, after: int, example_len: int, skip: int) -> None:
        self.k, self.before, self.after, self.E, self.skip = k, before, after, example_len, skip
        w = before + after + 1
        self.values = torch.zeros(d_sae, k)
        self.example = torch.full((d_sae, k), -1, dtype=torch.long)
        self.row = torch.full((d_sae, k), -1, dtype=torch.long)
        self.position = torch.full((d_sae, k), -1, dtype=torch.long)
        self.token = torch.full((d_sae, k), -1, dtype=torch.long)
        self.window = torch.full((d_sae, k, w), float("nan"))
        self.fire_count = torch.zeros(d_sae, dtype=torch.long)
        self.hist = torch.zeros(d_sae, len(HIST_EDGES) - 1, dtype=torch.long)
        self.log_edges = HIST_EDGES.log10()
        self.n_tokens = 0

    def add(self, f: Float[Tensor, "B T d_sae"], tokens: Int[Tensor, "B T"], row0: int) -> None:
        B, T, d_sae = f.shape
        f = f.detach().float().cpu().clone()
        tokens = tokens.cpu()
        f[:, : self.skip] = 0
        if bool((f < 0).any()):
            raise ValueError(
                "SAE features must be non-negative (ReLU / TopK / JumpReLU SAEs) for top-example collection"
            )
        nb = T // self.E
        # statistics over the counted positions
        self.n_tokens += B * (T - self.skip)
        active = f > 0
        self.fire_count += active.sum((0, 1))
        nz = active.nonzero()
        if nz.numel():
            vals = f[nz[:, 0], nz[:, 1], nz[:, 2]]
            bins = torch.bucketize(vals.log10(), self.log_edges[1:-1])
            self.hist.index_put_((nz[:, 2], bins), torch.ones_like(bins), accumulate=True)
        # candidates: one per (row, block)
        blocks = f.view(B, nb, self.E, d_sae).max(2)
        cand_val = blocks.values.reshape(B * nb, d_sae).T  # [d_sae, C]
        cand_pos = (blocks.indices + torch.arange(nb)[None, :, None] * self.E).reshape(B * nb, d_sae).T
        cand_row_local = torch.arange(B).repeat_interleave(nb)  # [C]
        C = B * nb
        # windows of activations around each candidate's max: [d_sae, C, w]
        offs = torch.arange(-self.before, self.after + 1)
        idx = cand_pos[:, :, None] + offs  # [d_sae, C, w]
        inside = (idx >= 0) & (idx < T)
        fr = f.permute(2, 0, 1)[:, cand_row_local]  # [d_sae, C, T]
        win = fr.gather(2, idx.clamp(0, T - 1))
        win = torch.where(inside, win, torch.full_like(win, float("nan")))
        cand_tok = tokens[cand_row_local[None, :].expand(d_sae, C), cand_pos]
        cand_ex = ((row0 + cand_row_local) * nb + torch.arange(C) % nb)[None].expand(d_sae, C)
        cand_rowg = (row0 + cand_row_local)[None].expand(d_sae, C)
        # merge with the running top-k
        vals = torch.cat([self.values, cand_val], 1)
        top = vals.topk(self.k, dim=1)
        sel = top.indices

        def merge(old, new):
            both = torch.cat([old, new], 1)
            if both.ndim == 3:
                return both.gather(1, sel[:, :, None].expand(-1, -1, both.shape[2]))
            return both.gather(1, sel)

        self.values = top.values
        self.example = merge(self.example, cand_ex)
        self.row = merge(self.row, cand_rowg)
        self.position = merge(self.position, cand_pos)
        self.token = merge(self.token, cand_tok)
        self.window = merge(self.window, win)

    def result(self, tokens: Tensor) -> TopExamples:
        empty = self.values <= 0
        for t in (self.example, self.row, self.position, self.token):
            t[empty] = -1
        self.window[empty] = float("nan")
        return TopExamples(
            self.values,
            self.example,
            self.row,
            self.position,
            self.token,
            self.window,
            self.fire_count,
            self.hist,
            tokens.cpu(),
            self.n_tokens,
            self.E,
            self.skip,
            self.before,
            self.after,
        )


def collect_top_examples(
    model,
    saes,
    tokens: Int[Tensor, "n_rows T"],
    *,
    k: int = N_TOP_EXAMPLES,
    example_len: int | None = None,
    skip_positions: int = 1,
    window: tuple[int, int] = (15, 4),
    batch_size: int = 8,
    progress: bool = True,
) -> Union[TopExamples, dict[str, TopExamples]]:
    """Stream ``tokens`` through ``model`` (registry probes at each SAE's site; the forward stops
    after the deepest site) and keep, per feature, the top-``k`` examples. ``saes`` is one SAE or a
    mapping ``{name: sae}`` (one pass for all of them; returns ``{name: TopExamples}``).

    Rows must be unpadded (a corpus of fixed-length sequences)."""
    from tqdm.auto import tqdm

    single = not isinstance(saes, Mapping)
    sae_map = {"sae": saes} if single else dict(saes)
    if not sae_map:
        raise ValueError("no SAE given")
    tokens = torch.as_tensor(tokens)
    if tokens.ndim != 2 or tokens.is_floating_point() or tokens.shape[0] == 0:
        raise ValueError(
            f"tokens must be a non-empty integer tensor [n_rows, T], got {tokens.dtype} {tuple(tokens.shape)}"
        )
    T = tokens.shape[1]
    E = T if example_len is None else example_len
    if isinstance(E, bool) or not isinstance(E, int) or E < 1 or T % E:
        raise ValueError(f"example_len must be a positive divisor of the row length {T}, got {example_len!r}")
    check_int("k", k, min=1)
    check_int("skip_positions", skip_positions, min=0, max=T - 1)
    check_int("batch_size", batch_size, min=1)
    check_bool("progress", progress)
    if not isinstance(window, (tuple, list)) or len(window) != 2:
        raise ValueError(f"window must be two non-negative ints (before, after), got {window!r}")
    before, after = (check_int("window", w, min=0) for w in window)
    reg = HookRegistry(model)
    probes: dict[str, str] = {}
    for name, sae in sae_map.items():
        check_sae(sae)
        site = sae_site(sae, model)
        probe = f"sae-input@{site.short}"
        if probe not in probes.values():
            reg.probe(probe, site)
        probes[name] = probe
    accs = {name: _TopKAccumulator(sae.cfg.d_sae, k, before, after, E, skip_positions) for name, sae in sae_map.items()}
    bar = tqdm(
        total=tokens.numel(), desc="top examples", unit="tok", unit_scale=True, disable=not progress, leave=False
    )
    with torch.no_grad():
        for start in range(0, tokens.shape[0], batch_size):
            chunk = tokens[start : start + batch_size]
            reg.run(chunk)
            for name, sae in sae_map.items():
                x = cast(Tensor, reg.records[probes[name]])  # unpadded rows: one [B, T, d] tensor
                accs[name].add(sae.encode(x.to(sae.device, sae.dtype)), chunk, start)
            bar.update(chunk.numel())
    bar.close()
    out = {name: acc.result(tokens) for name, acc in accs.items()}
    return out["sae"] if single else out


__all__ = ["HIST_EDGES", "N_TOP_EXAMPLES", "TopExamples", "collect_top_examples"]
