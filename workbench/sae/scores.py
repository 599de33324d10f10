"""Input and output scores of SAE features (Arad, Mueller & Belinkov 2025, "SAEs are good for
steering — if you select the right features"; METHODS.md section 2).

For feature ``i`` with decoder direction ``d_i`` (:func:`workbench.sae.steering.decoder_directions`):

* **Logit lens** ``p_i = softmax(W_U · LN_f(d_i))`` (the model's own final norm and unembedding);
  ``T_i`` = the ``k = 20`` tokens with the highest ``p_i``.
* **Input score** ``S_in(i)``: among the feature's top-activating examples (the first 100, by the
  feature's maximum activation in the example; features with fewer than 10 examples get NaN), the
  fraction whose max-activating token is in ``T_i``. Examples are collected by
  :func:`collect_top_examples`, streaming a corpus through registry probes with a running top-k per
  feature, so memory stays bounded.
* **Output score** ``S_out(i)``: on the neutral prompt ``"From my experience,"``, at the SAE's site
  and the last position, ``f = enc(x)``, ``f_i += 10 · max_j f_j``, written back as
  ``dec(f') + (x − dec(f))``. With the next-token distribution ``q`` and
  ``r = min_{t∈T_i} rank_q(t)`` (0-based), ``S_out(i) = (1 − r/|V|) · max_{t∈T_i} q(t)``.
  Ranks count the tokens with strictly larger probability (ties resolve in favour of ``T_i``).

:func:`output_scores` batches many features per forward pass (row ``b`` steers feature ``b``) and,
for residual-stream SAEs, starts at the SAE's layer: the prompt runs once up to the site (read by a
registry probe), and the edited residuals of a whole batch go through ``model(resid,
start_at_layer=L+1)``. :func:`output_scores_naive` is the reference: one full forward pass per
feature, the edit applied by a registry steer. Both use the same edit
(:func:`workbench.sae.steering.amplify_feature`).
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..registry import HookRegistry
from ..tokens import tokenize
from .loading import sae_site
from .steering import AmplifyFeature, amplify_feature, check_sae, decoder_directions

NEUTRAL_PROMPT = "From my experience,"
LOGIT_LENS_K = 20
N_TOP_EXAMPLES = 100
MIN_EXAMPLES = 10
OUTPUT_FACTOR = 10.0


# ----------------------------------------------------------------------------- logit lens


@dataclass(frozen=True)
class LogitLens:
    """Per feature: the ``k`` top tokens of ``p_i`` (with probabilities and logits) and the
    ``n_bottom`` lowest-logit tokens."""

    top_tokens: Int[Tensor, "d_sae k"]
    top_probs: Float[Tensor, "d_sae k"]
    top_logits: Float[Tensor, "d_sae k"]
    bottom_tokens: Int[Tensor, "d_sae n_bottom"]
    bottom_logits: Float[Tensor, "d_sae n_bottom"]

    @property
    def k(self) -> int:
        return self.top_tokens.shape[1]


def logit_lens_logits(model, directions: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_vocab"]:
    """``W_U · LN_f(d)`` for each row ``d`` (the model's own ``ln_final`` and ``unembed``)."""
    if directions.ndim != 2 or directions.shape[1] != model.cfg.d_model:
        raise ValueError(f"directions must be [n, d_model={model.cfg.d_model}], got {tuple(directions.shape)}")
    h = directions.to(model.cfg.device, model.cfg.dtype)[:, None, :]
    with torch.no_grad():
        return model.unembed(model.ln_final(h))[:, 0].float()


def feature_logit_lens(
    model, sae, *, k: int = LOGIT_LENS_K, n_bottom: int = 10, chunk: int = 256, features: Optional[Sequence[int]] = None
) -> LogitLens:
    """The logit lens of every feature: ``p_i = softmax(W_U · LN_f(d_i))`` and its top-``k`` tokens.

    With ``features``, only those rows are computed (the unembedding of all features is the costly
    part); the other rows hold token -1 and NaN, and count as "no lens" downstream."""
    if not isinstance(k, int) or not 1 <= k <= model.cfg.d_vocab:
        raise ValueError(f"k must be an int in [1, {model.cfg.d_vocab}], got {k!r}")
    sae_site(sae, model)
    d_sae = sae.cfg.d_sae
    idx = _feature_list(sae, features)
    dirs = decoder_directions(sae, idx)
    tops, probs, logits_top, bots, logits_bot = [], [], [], [], []
    for part in dirs.split(chunk):
        logits = logit_lens_logits(model, part)
        t = logits.topk(k, dim=-1)
        tops.append(t.indices.cpu())
        logits_top.append(t.values.cpu())
        probs.append((t.values - logits.logsumexp(-1, keepdim=True)).exp().cpu())
        b = logits.topk(n_bottom, dim=-1, largest=False)
        bots.append(b.indices.cpu())
        logits_bot.append(b.values.cpu())
    parts = [torch.cat(x) for x in (tops, probs, logits_top, bots, logits_bot)]
    if features is None:
        return LogitLens(*parts)
    full = []
    for x in parts:
        fill = -1 if not x.is_floating_point() else float("nan")
        y = torch.full((d_sae, x.shape[1]), fill, dtype=x.dtype)
        y[idx] = x
        full.append(y)
    return LogitLens(*full)


# ----------------------------------------------------------------------------- top-activating examples

HIST_EDGES = torch.logspace(-3, 4, 57)  # 8 log-spaced bins per decade for activations in [1e-3, 1e4]


@dataclass
class TopExamples:
    """Streaming summary of one SAE's features over a corpus of token rows ``[n_rows, T]``.

    An *example* is a block of ``example_len`` consecutive positions of a row (the whole row by
    default); example ``e`` is block ``e % blocks`` of row ``e // blocks``. For each feature, the
    ``k`` examples with the largest max activation are kept, sorted descending, with the position
    and token of the max and the activations in a window around it (NaN outside the row).
    Positions ``< skip_positions`` are ignored (SmolLM2's position 0 is an attention sink)."""

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
        """Write ``top_examples.safetensors`` + ``top_examples.json`` into folder ``path``."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {
            k: getattr(self, k).contiguous()
            for k in (
                "values",
                "example",
                "row",
                "position",
                "token",
                "fire_count",
                "hist_counts",
                "tokens",
                "hist_edges",
            )
        }
        tensors["window"] = self.window.to(torch.float16).contiguous()
        save_file(tensors, str(path / "top_examples.safetensors"))
        meta = {
            k: getattr(self, k) for k in ("n_tokens", "example_len", "skip_positions", "window_before", "window_after")
        }
        (path / "top_examples.json").write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "TopExamples":
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / "top_examples.safetensors").exists():
            raise FileNotFoundError(f"no top_examples.safetensors in {path}; run `workbench sae scores` first")
        t = load_file(str(path / "top_examples.safetensors"))
        meta = json.loads((path / "top_examples.json").read_text())
        t["window"] = t["window"].float()
        return cls(**t, **meta)


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
    example_len: Optional[int] = None,
    skip_positions: int = 1,
    window: tuple[int, int] = (15, 4),
    batch_size: int = 8,
    progress: bool = True,
):
    """Stream ``tokens`` through ``model`` (registry probes at each SAE's site; the forward stops
    after the deepest site) and keep, per feature, the top-``k`` examples. ``saes`` is one SAE or a
    mapping ``{name: sae}`` (one pass for all of them; returns ``{name: TopExamples}``).

    Rows must be unpadded (a corpus of fixed-length sequences). Memory is bounded by
    ``d_sae × (k + batch) × window`` per SAE, whatever the corpus size."""
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
    if not isinstance(E, int) or E < 1 or T % E:
        raise ValueError(f"example_len must be a positive divisor of the row length {T}, got {example_len!r}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if not 0 <= skip_positions < T:
        raise ValueError(f"skip_positions must be in [0, {T}), got {skip_positions!r}")
    before, after = window
    if before < 0 or after < 0:
        raise ValueError(f"window must be two non-negative ints (before, after), got {window!r}")
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
                x = reg.records[probes[name]]
                accs[name].add(sae.encode(x.to(sae.dtype)), chunk, start)
            bar.update(chunk.numel())
    bar.close()
    out = {name: acc.result(tokens) for name, acc in accs.items()}
    return out["sae"] if single else out


# ----------------------------------------------------------------------------- input score


def input_scores(
    max_tokens: Int[Tensor, "d_sae k"],
    valid: Bool[Tensor, "d_sae k"],
    lens_top_tokens: Int[Tensor, "d_sae k_lens"],
    *,
    n_examples: int = N_TOP_EXAMPLES,
    min_examples: int = MIN_EXAMPLES,
) -> Float[Tensor, " d_sae"]:
    """``S_in(i)``: the share of feature ``i``'s first ``n_examples`` valid top-activating examples
    (columns sorted by activation, descending) whose max-activating token is in ``T_i``; NaN for
    features with fewer than ``min_examples`` examples."""
    if max_tokens.shape != valid.shape or max_tokens.shape[0] != lens_top_tokens.shape[0]:
        raise ValueError(
            f"shapes disagree: max_tokens {tuple(max_tokens.shape)}, valid {tuple(valid.shape)}, "
            f"lens_top_tokens {tuple(lens_top_tokens.shape)}"
        )
    use = valid & (valid.long().cumsum(1) <= n_examples)
    hit = (max_tokens[:, :, None] == lens_top_tokens[:, None, :]).any(-1) & use
    n = use.sum(1)
    score = hit.sum(1).float() / n.clamp_min(1).float()
    has_lens = (lens_top_tokens >= 0).all(1)
    return torch.where((n >= min_examples) & has_lens, score, torch.full_like(score, float("nan")))


def input_scores_from_examples(examples: TopExamples, lens: LogitLens, **kwargs) -> Float[Tensor, " d_sae"]:
    return input_scores(examples.token, examples.valid, lens.top_tokens, **kwargs)


# ----------------------------------------------------------------------------- output score


def output_score_from_logits(
    logits: Float[Tensor, "batch d_vocab"], top_tokens: Int[Tensor, "batch k"]
) -> Float[Tensor, " batch"]:
    """``S_out = (1 − r/|V|) · max_{t∈T} q(t)`` with ``q = softmax(logits)`` and
    ``r = min_{t∈T} rank_q(t)`` = the number of tokens more probable than the best token of ``T``."""
    if logits.ndim != 2 or top_tokens.ndim != 2 or logits.shape[0] != top_tokens.shape[0]:
        raise ValueError(
            f"need logits [batch, vocab] and top_tokens [batch, k], got {tuple(logits.shape)} and {tuple(top_tokens.shape)}"
        )
    q = logits.float().softmax(-1)
    q_best = q.gather(1, top_tokens.to(q.device)).max(1).values
    rank = (q > q_best[:, None]).sum(1)
    return (1 - rank.float() / q.shape[1]) * q_best


def _prompt_tokens(model, prompt) -> Tensor:
    if isinstance(prompt, str):
        return tokenize(model, prompt).tokens
    t = torch.as_tensor(prompt)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[0] != 1 or t.is_floating_point():
        raise ValueError(f"prompt must be a string or one row of token ids, got {tuple(t.shape)}")
    return t


def _feature_list(sae, features) -> Tensor:
    if features is None:
        return torch.arange(sae.cfg.d_sae)
    idx = torch.as_tensor(features).long().flatten()
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= sae.cfg.d_sae):
        raise IndexError(f"features must be in 0..{sae.cfg.d_sae - 1}, got min {int(idx.min())}, max {int(idx.max())}")
    return idx


def _lens_tokens(model, sae, lens: Optional[LogitLens], k: int, idx: Tensor) -> Tensor:
    top = (lens if lens is not None else feature_logit_lens(model, sae, k=k, features=idx)).top_tokens
    missing = idx[(top[idx] < 0).any(1)]
    if missing.numel():
        raise ValueError(
            f"the logit lens was not computed for features {missing[:8].tolist()}...; "
            "pass a lens computed for them (feature_logit_lens(..., features=...))"
        )
    return top


def _prefix_kv_cache(model, prefix_tokens: Tensor):
    """Keys and values of every layer for the prompt without its last token (one forward pass)."""
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

    cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, 1)
    with torch.no_grad():
        model(
            prefix_tokens,
            attention_mask=torch.ones_like(prefix_tokens),
            past_kv_cache=cache,
            stop_at_layer=model.cfg.n_layers,
        )
    return cache


def last_position_logits(
    model, last_resid: Float[Tensor, "batch d_model"], start_at_layer: int, prefix_cache=None
) -> Float[Tensor, "batch d_vocab"]:
    """Logits at the last prompt position when its residual entering block ``start_at_layer`` is
    ``last_resid`` (one row per batch element) and the earlier positions are unchanged.

    Causal attention means the earlier positions' keys and values do not depend on the last
    position, so they come from ``prefix_cache`` (frozen, shared by every row): blocks
    ``start_at_layer..`` run on one position per row, then the final norm and unembedding."""
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
    from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

    B = last_resid.shape[0]
    resid = last_resid[:, None].to(model.cfg.dtype)
    if start_at_layer < model.cfg.n_layers:
        cache = None
        if prefix_cache is not None:
            entries = [
                TransformerLensKeyValueCacheEntry(
                    e.past_keys.expand(B, -1, -1, -1), e.past_values.expand(B, -1, -1, -1), frozen=True
                )
                for e in prefix_cache.entries
            ]
            cache = TransformerLensKeyValueCache(
                entries, prefix_cache.previous_attention_mask.expand(B, -1), frozen=True
            )
        resid = model(resid, start_at_layer=start_at_layer, stop_at_layer=model.cfg.n_layers, past_kv_cache=cache)
    return model.unembed(model.ln_final(resid))[:, -1]


def output_scores(
    model,
    sae,
    lens: Optional[LogitLens] = None,
    features: Optional[Sequence[int]] = None,
    *,
    prompt=NEUTRAL_PROMPT,
    factor: float = OUTPUT_FACTOR,
    batch_size: int = 128,
    method: str = "auto",
    k: int = LOGIT_LENS_K,
    progress: bool = True,
) -> Float[Tensor, " n_features"]:
    """``S_out`` for ``features`` (default: all), many features per forward pass.

    ``method="cached"`` (residual-stream SAEs): run the prompt once to the SAE's site (registry
    probe) and once more without its last token to cache every layer's keys and values; then each
    batch of edited last-position residuals goes through ``model(resid, start_at_layer=L+1,
    past_kv_cache=prefix)`` (see :func:`last_position_logits`). ``method="full"``: full forward passes over ``batch_size`` copies of the prompt with a
    per-row :class:`AmplifyFeature` steer at the last position. ``"auto"`` picks ``"cached"`` when
    the site is ``resid_pre`` / ``resid_post``."""
    from tqdm.auto import tqdm

    if method not in ("auto", "cached", "full"):
        raise ValueError(f"method must be 'auto', 'cached' or 'full', got {method!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    check_sae(sae)
    site = sae_site(sae, model)
    idx = _feature_list(sae, features)
    top = _lens_tokens(model, sae, lens, k, idx)
    tokens = _prompt_tokens(model, prompt).to(model.cfg.device)
    cacheable = site.stream in ("resid_pre", "resid_post") and site.layer is not None
    if method == "cached" and not cacheable:
        raise ValueError(f"method='cached' needs a resid_pre/resid_post SAE, this one is at {site}; use method='full'")
    use_cache = cacheable and method != "full"
    reg = HookRegistry(model)
    scores = []
    with torch.no_grad():
        if use_cache:
            reg.probe("x", site)
            reg.run(tokens)
            x = reg.records["x"]  # [1, T, d]
            start = site.layer + 1 if site.stream == "resid_post" else site.layer
            reg.clear()
            prefix = _prefix_kv_cache(model, tokens[:, :-1]) if tokens.shape[1] > 1 else None
        bar = tqdm(total=len(idx), desc=f"output scores {site.short}", disable=not progress, leave=False)
        for part in idx.split(batch_size):
            B = part.numel()
            if use_cache:
                last = amplify_feature(sae, x[:, -1].expand(B, -1), part, factor)
                logits = last_position_logits(model, last, start, prefix)
            else:
                reg.steer("amplify", site, AmplifyFeature(sae, part, factor), positions="last")
                logits = reg.run(tokens.expand(B, -1), need_logits=True)[:, -1]
                reg.remove("amplify")
            scores.append(output_score_from_logits(logits, top[part]).cpu())
            bar.update(B)
        bar.close()
    return torch.cat(scores) if scores else torch.zeros(0)


def output_scores_naive(
    model,
    sae,
    lens: Optional[LogitLens] = None,
    features: Optional[Sequence[int]] = None,
    *,
    prompt=NEUTRAL_PROMPT,
    factor: float = OUTPUT_FACTOR,
    k: int = LOGIT_LENS_K,
    progress: bool = True,
) -> Float[Tensor, " n_features"]:
    """The reference loop: for each feature, one full forward pass of the prompt with a registry
    steer (:class:`AmplifyFeature`) at the SAE's site on the last position."""
    from tqdm.auto import tqdm

    site = sae_site(sae, model)
    idx = _feature_list(sae, features)
    top = _lens_tokens(model, sae, lens, k, idx)
    tokens = _prompt_tokens(model, prompt).to(model.cfg.device)
    reg = HookRegistry(model)
    out = []
    with torch.no_grad():
        for i in tqdm(idx.tolist(), desc=f"output scores (naive) {site.short}", disable=not progress, leave=False):
            reg.steer("amplify", site, AmplifyFeature(sae, i, factor), positions="last")
            logits = reg.run(tokens, need_logits=True)[:, -1]
            reg.remove("amplify")
            out.append(output_score_from_logits(logits, top[[i]]).cpu())
    return torch.cat(out) if out else torch.zeros(0)


# ----------------------------------------------------------------------------- tables and selection


def _token_strings(model, ids: Tensor) -> list[str]:
    tok = getattr(model, "tokenizer", None)
    ids = [int(i) for i in ids if int(i) >= 0]
    if tok is None:
        return [str(i) for i in ids]
    return [tok.decode([i]) for i in ids]


def score_table(
    model,
    sae,
    *,
    lens: LogitLens,
    output: Optional[Tensor] = None,
    examples: Optional[TopExamples] = None,
    input: Optional[Tensor] = None,
    n_show: int = 8,
):
    """A pandas DataFrame, one row per feature: ``feature``, ``output_score``, ``input_score``,
    ``n_examples``, ``max_activation``, ``fire_frequency``, and the logit-lens ``top_tokens``
    (first ``n_show`` as a list of strings) and ``top_token_ids`` (all ``k``)."""
    import pandas as pd

    d_sae = sae.cfg.d_sae
    nan = torch.full((d_sae,), float("nan"))
    if input is None and examples is not None:
        input = input_scores_from_examples(examples, lens)
    df = pd.DataFrame(
        {
            "feature": range(d_sae),
            "output_score": (output if output is not None else nan).numpy(),
            "input_score": (input if input is not None else nan).numpy(),
            "n_examples": (examples.n_examples.numpy() if examples is not None else [-1] * d_sae),
            "max_activation": (examples.max_activation.numpy() if examples is not None else nan.numpy()),
            "fire_frequency": (examples.fire_frequency.numpy() if examples is not None else nan.numpy()),
        }
    )
    df["top_tokens"] = [_token_strings(model, row[:n_show]) for row in lens.top_tokens]
    df["top_token_ids"] = [[t for t in row.tolist() if t >= 0] for row in lens.top_tokens]
    return df


def select_features(
    sae,
    *,
    model,
    scores=None,
    min_output_score: Optional[float] = None,
    min_input_score: Optional[float] = None,
    max_input_score: Optional[float] = None,
    top_n: Optional[int] = None,
    sort_by: str = "output_score",
    corpus_tokens: Optional[Tensor] = None,
):
    """Choose features by their scores; returns the selected rows of :func:`score_table` (feature,
    scores, max activation, logit-lens tokens), sorted by ``sort_by`` descending.

    ``scores`` is a :class:`FeatureScores` or a table from :func:`score_table`; without it the output
    scores are computed (batched), and the input scores too when an input threshold is given
    (from ``corpus_tokens``, default the held-out corpus)."""
    import pandas as pd

    for name, v in (
        ("min_output_score", min_output_score),
        ("min_input_score", min_input_score),
        ("max_input_score", max_input_score),
    ):
        if v is not None and not (isinstance(v, (int, float)) and 0 <= v <= 1):
            raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")
    if top_n is not None and (not isinstance(top_n, int) or top_n < 1):
        raise ValueError(f"top_n must be a positive int, got {top_n!r}")
    if sort_by not in ("output_score", "input_score", "max_activation", "feature"):
        raise ValueError(f"sort_by must be output_score, input_score, max_activation or feature, got {sort_by!r}")
    if scores is None:
        need_input = (
            min_input_score is not None or max_input_score is not None or sort_by in ("input_score", "max_activation")
        )
        scores = feature_scores(model, sae, corpus_tokens=corpus_tokens, with_input=need_input, progress=False)
    if isinstance(scores, FeatureScores):
        scores = scores.table
    if not isinstance(scores, pd.DataFrame) or "output_score" not in scores:
        raise TypeError(f"scores must be a FeatureScores or a DataFrame from score_table, got {type(scores).__name__}")
    keep = pd.Series(True, index=scores.index)
    if min_output_score is not None:
        keep &= scores["output_score"] >= min_output_score
    if min_input_score is not None:
        keep &= scores["input_score"] >= min_input_score
    if max_input_score is not None:
        keep &= scores["input_score"] <= max_input_score
    out = scores[keep].sort_values(sort_by, ascending=sort_by == "feature", kind="stable")
    return out.head(top_n) if top_n is not None else out


# ----------------------------------------------------------------------------- corpus


def heldout_tokens(model, n_rows: Optional[int] = None) -> Int[Tensor, "n T"]:
    """The held-out split of ``workbench.sae.corpus`` (documents never seen by our SAEs' training),
    first ``n_rows`` sequences. Built from the package-registry sources on first use (cached)."""
    from .corpus import build_corpus

    if model.tokenizer is None:
        raise ValueError("the held-out corpus needs a model with a tokenizer")
    held = build_corpus(model.tokenizer).heldout
    if n_rows is not None:
        if not isinstance(n_rows, int) or n_rows < 1:
            raise ValueError(f"n_rows must be a positive int, got {n_rows!r}")
        held = held[:n_rows]
    return held


@dataclass
class FeatureScores:
    """Scores of every feature of one SAE: the table (see :func:`score_table`), the logit lens and
    the top examples (None when input scores were not computed)."""

    table: "object"
    lens: LogitLens
    examples: Optional[TopExamples] = None


def feature_scores(
    model,
    sae,
    *,
    corpus_tokens: Optional[Tensor] = None,
    n_rows: int = 256,
    with_input: bool = True,
    example_len: Optional[int] = None,
    batch_size: int = 128,
    progress: bool = True,
) -> FeatureScores:
    """Everything at once: logit lens, output scores (batched), and, with ``with_input``, the top
    examples over ``corpus_tokens`` (default: the first ``n_rows`` held-out sequences) and the
    input scores."""
    lens = feature_logit_lens(model, sae)
    out = output_scores(model, sae, lens, batch_size=batch_size, progress=progress)
    examples = None
    if with_input:
        toks = corpus_tokens if corpus_tokens is not None else heldout_tokens(model, n_rows)
        examples = collect_top_examples(model, sae, toks, example_len=example_len, progress=progress)
    return FeatureScores(score_table(model, sae, lens=lens, output=out, examples=examples), lens, examples)


# ----------------------------------------------------------------------------- saving


def _table_for_csv(table):
    t = table.copy()
    t["top_tokens"] = [" | ".join(x) for x in t["top_tokens"]]
    t["top_token_ids"] = [" ".join(map(str, x)) for x in t["top_token_ids"]]
    return t


def save_scores(scores: FeatureScores, path: Union[str, Path]) -> Path:
    """Write ``scores.csv``, ``logit_lens.safetensors`` and (when present) the top examples into folder ``path``."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    _table_for_csv(scores.table).to_csv(path / "scores.csv", index=False)
    save_file(
        {
            k: getattr(scores.lens, k).contiguous()
            for k in ("top_tokens", "top_probs", "top_logits", "bottom_tokens", "bottom_logits")
        },
        str(path / "logit_lens.safetensors"),
    )
    if scores.examples is not None:
        scores.examples.save(path)
    return path


def load_scores(path: Union[str, Path]) -> FeatureScores:
    """Read what :func:`save_scores` wrote."""
    import pandas as pd
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "scores.csv").exists():
        raise FileNotFoundError(f"no scores.csv in {path}; compute scores first (`workbench sae scores`)")
    table = pd.read_csv(path / "scores.csv", keep_default_na=True)
    table["top_tokens"] = [str(x).split(" | ") if isinstance(x, str) else [] for x in table["top_tokens"]]
    table["top_token_ids"] = [[int(v) for v in x.split()] if isinstance(x, str) else [] for x in table["top_token_ids"]]
    lens = LogitLens(**load_file(str(path / "logit_lens.safetensors")))
    examples = TopExamples.load(path) if (path / "top_examples.safetensors").exists() else None
    return FeatureScores(table, lens, examples)
