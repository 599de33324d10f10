"""Lenses: read the model's running prediction off the residual stream of every layer.

* **Logit lens** (nostalgebraist 2020): ``logits_L = LN_f(h_L) · W_U + b_U``, where the final norm's
  statistics are *recomputed* from ``h_L`` (never the scale cached for the last layer).
* **Tuned lens** (Belrose et al. 2023, "Eliciting latent predictions from transformers with the tuned
  lens"): ``logits_L = LN_f(h_L + A_L h_L + b_L) · W_U + b_U`` with a per-layer affine translator
  ``(A_L, b_L)``, zero-initialised (so training starts at the logit lens) and trained to minimise
  ``KL(p_final ‖ p_L)`` on corpus text.

Residuals are read through ``HookRegistry`` probes at ``resid_post.L`` (probes read *after* any steer
at the same site), so the lens of a steered run shows how a steer at layer L changes the prediction
layer by layer.
"""

import contextlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Union

import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from .plots.style import PALETTE, style
from .registry import HookRegistry

_PROBE_PREFIX = "_lens.resid_post."


# --------------------------------------------------------------------------- pure maths
def final_norm(model, h: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
    """The model's final normalisation applied to ``h`` with statistics recomputed from ``h``.

    RMSNorm: ``h / sqrt(mean(h²) + eps) · w``; LayerNorm: ``(h − mean h) / sqrt(var h + eps) · w + b``.
    (Pure function of the weights; it does not fire ``ln_final`` hooks.)"""
    cfg = model.cfg
    norm = cfg.normalization_type
    if norm is None:
        return h
    ln = model.ln_final
    if norm in ("RMS", "RMSPre"):
        x = h / (h.pow(2).mean(-1, keepdim=True) + cfg.eps).sqrt()
        return x * ln.w if norm == "RMS" else x
    if norm in ("LN", "LNPre"):
        c = h - h.mean(-1, keepdim=True)
        x = c / (c.pow(2).mean(-1, keepdim=True) + cfg.eps).sqrt()
        return x * ln.w + ln.b if norm == "LN" else x
    raise ValueError(f"final_norm does not know normalization_type={norm!r}; known: RMS, RMSPre, LN, LNPre, None")


def lens_logits(model, h: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
    """Logit lens: ``LN_f(h) · W_U + b_U`` with the norm recomputed for ``h`` (nostalgebraist 2020)."""
    return final_norm(model, h) @ model.W_U + model.b_U


def kl_to_final(
    final_logits: Float[Tensor, "... d_vocab"], logits: Float[Tensor, "... d_vocab"]
) -> Float[Tensor, "..."]:
    """``KL(p_final ‖ p) = Σ_v p_final(v) (log p_final(v) − log p(v))`` in nats, per position."""
    lp_final = final_logits.log_softmax(-1)
    lp = logits.log_softmax(-1)
    return (lp_final.exp() * (lp_final - lp)).sum(-1)


# --------------------------------------------------------------------------- reading residuals
def _layers(model, layers: Optional[Sequence[int]]) -> list[int]:
    n = model.cfg.n_layers
    if layers is None:
        return list(range(n))
    out = []
    for L in layers:
        if not isinstance(L, int) or isinstance(L, bool) or not -n <= L < n:
            raise ValueError(f"layer {L!r} is not a layer of this model (valid: 0..{n - 1}, or negative from the end)")
        out.append(L % n)
    return sorted(set(out))


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
    layers = _layers(model, layers)
    reg = registry if registry is not None else HookRegistry(model)
    batch = reg.as_batch(inputs)
    if not bool((batch.attention_mask == 1).all()):
        raise ValueError(
            "the lens needs inputs of equal token length (no padding); pass one prompt, or prompts of equal length"
        )
    names = [f"{_PROBE_PREFIX}{L}" for L in layers]
    try:
        for name, L in zip(names, layers):
            reg.probe(name, f"resid_post.{L}", when="after")
        with torch.no_grad():
            reg.run(batch, need_logits=False)
        return torch.stack([reg.records[name] for name in names], 0)
    finally:
        for name in names:
            try:
                reg.remove(name)
            except KeyError:
                pass


# --------------------------------------------------------------------------- logit lens
@dataclass(frozen=True)
class LensResult:
    """What a lens read: per row, layer and position, the top-k tokens and the targets' fate.

    Shapes: ``top_ids``/``top_probs`` ``[batch, layer, pos, k]``; ``target_probs``/``target_ranks``
    ``[batch, layer, pos, n_targets]`` (rank 0 = the most likely token); ``kl_to_final``
    ``[batch, layer, pos]`` (nats)."""

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
                pieces = [model.tokenizer.decode([i]) for i in enc]
                raise ValueError(
                    f"target {t!r} is {len(enc)} tokens {pieces}; a target must be one token (mind the leading space)"
                )
            ids.append(enc[0])
        else:
            raise TypeError(f"a target is a single-token string or an int id, got {t!r}")
    return ids


def _decode(model, ids: Sequence[int]) -> list[str]:
    tok = model.tokenizer
    return [tok.decode([int(i)]) if tok is not None else str(int(i)) for i in ids]


def read_lens(
    model,
    resid: Float[Tensor, "layer batch pos d_model"],
    layers: Sequence[int],
    input_tokens: Int[Tensor, "batch pos"],
    *,
    k: int = 5,
    targets: Optional[Sequence[Union[str, int]]] = None,
    translator: Optional["TunedLens"] = None,
) -> LensResult:
    """Turn residuals into a ``LensResult`` (logit lens, or tuned lens when ``translator`` is given)."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    tids = target_ids(model, targets)
    n_layers = model.cfg.n_layers
    layers = list(layers)
    if (n_layers - 1) not in layers:
        raise ValueError(
            f"read_lens needs the last layer ({n_layers - 1}) among `layers` to compare with the final distribution"
        )
    if resid.shape[0] != len(layers):
        raise ValueError(f"resid has {resid.shape[0]} layers but `layers` lists {len(layers)}")
    with torch.no_grad():
        # The reference distribution is the model's own output: the lens of the last resid_post.
        final_logits = lens_logits(model, resid[layers.index(n_layers - 1)])
        tops, topp, tp, tr, kls = [], [], [], [], []
        for li, L in enumerate(layers):
            h = resid[li]
            logits = translator.logits(model, h, L) if translator is not None else lens_logits(model, h)
            probs = logits.softmax(-1)
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
    top_ids = torch.stack(tops, 1)
    top_tokens = [
        [[_decode(model, top_ids[b, li, p].tolist()) for p in range(T)] for li in range(len(layers))] for b in range(B)
    ]
    empty = torch.zeros(B, len(layers), T, 0)
    return LensResult(
        layers=list(layers),
        tokens=[_decode(model, input_tokens[b].tolist()) for b in range(B)],
        top_ids=top_ids,
        top_tokens=top_tokens,
        top_probs=torch.stack(topp, 1),
        target_ids=tids,
        target_tokens=_decode(model, tids),
        target_probs=torch.stack(tp, 1) if tids else empty,
        target_ranks=torch.stack(tr, 1) if tids else empty.long(),
        kl_to_final=torch.stack(kls, 1),
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
    final distribution. The final norm is recomputed for each layer's residual.

    ``registry``: a ``HookRegistry`` whose enabled steers shape the run (the lens of a steered run);
    ``tuned``: a ``TunedLens`` to read through instead (Belrose et al. 2023)."""
    n = model.cfg.n_layers
    want = _layers(model, layers)
    read = sorted(set(want) | {n - 1})
    reg = registry if registry is not None else HookRegistry(model)
    batch = reg.as_batch(inputs)
    resid = residuals(model, batch, read, registry=reg)
    res = read_lens(model, resid, read, batch.tokens, k=k, targets=targets, translator=tuned)
    if read == want:
        return res
    keep = [read.index(L) for L in want]
    return LensResult(
        layers=want,
        tokens=res.tokens,
        top_ids=res.top_ids[:, keep],
        top_tokens=[[r[i] for i in keep] for r in res.top_tokens],
        top_probs=res.top_probs[:, keep],
        target_ids=res.target_ids,
        target_tokens=res.target_tokens,
        target_probs=res.target_probs[:, keep],
        target_ranks=res.target_ranks[:, keep],
        kl_to_final=res.kl_to_final[:, keep],
        lens=res.lens,
    )


# --------------------------------------------------------------------------- tuned lens
@dataclass(frozen=True)
class TunedLensConfig:
    """Training settings for the tuned lens (Belrose et al. 2023 use SGD with Nesterov momentum and
    large batches; on a CPU budget we use Adam with small steps).

    Adam moves every entry by about its learning rate, so the two parts get their own: ``lr`` for the
    bias, in units of the layer's residual RMS (the bias of layer L steps by ``lr · rms(h_L)``, so that
    its relative effect is the same at every depth), and ``lr_weight`` for ``A_L``, whose step acts on
    all ``d_model`` inputs at once and so must be much smaller."""

    steps: int = 60
    tokens_per_step: int = 64
    lr: float = 1e-2
    lr_weight: float = 1e-4
    weight_decay: float = 0.0
    layers_per_step: int = 0  # 0 = every layer each step; n > 0 = a random subset of n layers per step
    max_seconds: float = 0.0  # 0 = no time limit
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "tokens_per_step"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"TunedLensConfig.{name} must be a positive int, got {v!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"TunedLensConfig.lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.lr_weight, (int, float)) and self.lr_weight >= 0 and math.isfinite(self.lr_weight)):
            raise ValueError(f"TunedLensConfig.lr_weight must be a number >= 0, got {self.lr_weight!r}")
        if self.weight_decay < 0:
            raise ValueError(f"TunedLensConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        if not isinstance(self.layers_per_step, int) or self.layers_per_step < 0:
            raise ValueError(f"TunedLensConfig.layers_per_step must be an int >= 0, got {self.layers_per_step!r}")
        if self.max_seconds < 0:
            raise ValueError(f"TunedLensConfig.max_seconds must be >= 0, got {self.max_seconds!r}")


class TunedLens(nn.Module):
    """Per-layer affine translators ``h ↦ h + A_L h + b_L`` (zero-initialised: starts as the logit
    lens). The last layer keeps the identity (its lens is the model's output)."""

    def __init__(self, n_layers: int, d_model: int) -> None:
        super().__init__()
        if n_layers < 1 or d_model < 1:
            raise ValueError(f"TunedLens needs n_layers >= 1 and d_model >= 1, got {n_layers}, {d_model}")
        self.n_layers, self.d_model = n_layers, d_model
        self.weight = nn.ParameterList([nn.Parameter(torch.zeros(d_model, d_model)) for _ in range(n_layers)])
        self.bias = nn.ParameterList([nn.Parameter(torch.zeros(d_model)) for _ in range(n_layers)])

    @classmethod
    def for_model(cls, model) -> "TunedLens":
        return cls(model.cfg.n_layers, model.cfg.d_model)

    def translate(self, h: Float[Tensor, "... d_model"], layer: int) -> Float[Tensor, "... d_model"]:
        if layer == self.n_layers - 1:
            return h
        return h + h @ self.weight[layer].T + self.bias[layer]

    def logits(self, model, h: Float[Tensor, "... d_model"], layer: int) -> Float[Tensor, "... d_vocab"]:
        """Tuned lens: ``LN_f(h + A_L h + b_L) · W_U + b_U``."""
        return lens_logits(model, self.translate(h, layer))

    def save(self, path: Union[str, Path], metadata: Optional[dict] = None) -> Path:
        """Write ``path`` (safetensors: ``layer.{L}.weight``/``layer.{L}.bias``) and ``path.json``."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for L in range(self.n_layers):
            tensors[f"layer.{L}.weight"] = self.weight[L].detach().contiguous().clone()
            tensors[f"layer.{L}.bias"] = self.bias[L].detach().contiguous().clone()
        meta = {"n_layers": self.n_layers, "d_model": self.d_model, **(metadata or {})}
        save_file(
            tensors, str(path), metadata={"workbench": json.dumps({"n_layers": self.n_layers, "d_model": self.d_model})}
        )
        path.with_suffix(path.suffix + ".json").write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "TunedLens":
        from safetensors.torch import load_file

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no tuned lens at {path}; train one with train_tuned_lens(...) and .save(path)")
        state = load_file(str(path))
        n = sum(1 for k in state if k.endswith(".weight"))
        if n == 0:
            raise ValueError(f"{path} holds no 'layer.L.weight' tensors; it is not a tuned lens file")
        d = state["layer.0.weight"].shape[0]
        lens = cls(n, d)
        with torch.no_grad():
            for L in range(n):
                lens.weight[L].copy_(state[f"layer.{L}.weight"])
                lens.bias[L].copy_(state[f"layer.{L}.bias"])
        return lens


def default_tuned_lens_path(model) -> Path:
    from .models import cache_dir

    name = (model.cfg.model_name or "model").replace("/", "_")
    return cache_dir() / "tuned_lens" / f"{name}.safetensors"


def cache_residuals(
    model, tokens: Int[Tensor, "n_seq seq"], *, batch_size: int = 8, progress: bool = True
) -> Float[Tensor, "layer n_tokens d_model"]:
    """``resid_post`` of every layer over ``tokens`` (read by probes; the pass stops after the last
    block, so the unembedding is never computed), flattened to ``[layer, n_seq·seq, d_model]``."""
    from tqdm.auto import tqdm

    out = []
    for i in tqdm(range(0, tokens.shape[0], batch_size), desc="caching residuals", disable=not progress):
        r = residuals(model, tokens[i : i + batch_size])
        out.append(r.flatten(1, 2))
    return torch.cat(out, 1)


@contextlib.contextmanager
def _frozen(model):
    """Model parameters without gradients while the lens trains (restored afterwards, also on error):
    no wasted ``dW_U`` per step, and no ``.grad`` left on the model."""
    was = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in was:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in was:
            p.requires_grad_(flag)


def train_tuned_lens(
    model,
    resid: Float[Tensor, "layer n_tokens d_model"],
    config: TunedLensConfig = TunedLensConfig(),
    *,
    lens: Optional[TunedLens] = None,
    progress: bool = True,
) -> "tuple[TunedLens, list[float]]":
    """Fit translators to minimise the mean over layers of ``KL(p_final ‖ p_L)`` (Belrose et al.
    2023) on cached residuals (``resid[-1]`` is the last layer's, whose lens is the model output).
    Returns the lens and the loss per step."""
    from tqdm.auto import tqdm

    n_layers = model.cfg.n_layers
    if resid.shape[0] != n_layers or resid.shape[-1] != model.cfg.d_model:
        raise ValueError(
            f"resid must be [n_layers={n_layers}, n_tokens, d_model={model.cfg.d_model}], got {tuple(resid.shape)}"
        )
    lens = lens if lens is not None else TunedLens.for_model(model)
    g = torch.Generator().manual_seed(config.seed)
    rms = resid.pow(2).mean((1, 2)).sqrt()  # residual scale per layer
    groups = []
    for L in range(n_layers - 1):
        groups.append({"params": [lens.bias[L]], "lr": config.lr * float(rms[L])})
        if config.lr_weight > 0:
            groups.append({"params": [lens.weight[L]], "lr": config.lr_weight})
    opt = torch.optim.Adam(groups, weight_decay=config.weight_decay)
    trainable = list(range(n_layers - 1))
    losses: list[float] = []
    t0 = time.perf_counter()
    n_tok = resid.shape[1]
    for _ in tqdm(range(config.steps), desc="training tuned lens", disable=not progress):
        idx = torch.randint(0, n_tok, (min(config.tokens_per_step, n_tok),), generator=g)
        with torch.no_grad():
            target = lens_logits(model, resid[-1, idx]).log_softmax(-1)
            p_target = target.exp()
        if config.layers_per_step and config.layers_per_step < len(trainable):
            pick = torch.randperm(len(trainable), generator=g)[: config.layers_per_step].tolist()
            layers = [trainable[i] for i in pick]
        else:
            layers = trainable
        opt.zero_grad()
        total = 0.0
        with torch.enable_grad(), _frozen(model):
            for L in layers:
                lp = lens.logits(model, resid[L, idx], L).log_softmax(-1)
                loss = (p_target * (target - lp)).sum(-1).mean() / len(layers)
                loss.backward()
                total += loss.item()
        opt.step()
        losses.append(total)
        if config.max_seconds and time.perf_counter() - t0 > config.max_seconds:
            break
    return lens, losses


def lens_kl_by_layer(
    model, resid: Float[Tensor, "layer n_tokens d_model"], tuned: Optional[TunedLens] = None, *, chunk: int = 128
) -> dict[str, Tensor]:
    """Mean ``KL(p_final ‖ p_L)`` (nats) per layer over held-out residuals, for the logit lens and
    (when given) the tuned lens: ``{"logit": [n_layers], "tuned": [n_layers]}``."""
    n_layers = resid.shape[0]
    sums = {"logit": torch.zeros(n_layers)}
    if tuned is not None:
        sums["tuned"] = torch.zeros(n_layers)
    n = resid.shape[1]
    with torch.no_grad():
        for i in range(0, n, chunk):
            final = lens_logits(model, resid[-1, i : i + chunk])
            for L in range(n_layers):
                h = resid[L, i : i + chunk]
                sums["logit"][L] += kl_to_final(final, lens_logits(model, h)).sum()
                if tuned is not None:
                    sums["tuned"][L] += kl_to_final(final, tuned.logits(model, h, L)).sum()
    return {k: v / n for k, v in sums.items()}


# --------------------------------------------------------------------------- figures
def lens_heatmap(result: LensResult, row: int = 0, *, title: Optional[str] = None) -> go.Figure:
    """Heatmap of tokens × layers: colour = probability of the lens' top token, text = that token."""
    probs = result.top_probs[row, :, :, 0].numpy()
    text = [[result.top_tokens[row][li][p][0] for p in range(probs.shape[1])] for li in range(probs.shape[0])]
    xlabels = [f"{p}:{t!r}"[:18] for p, t in enumerate(result.tokens[row])]
    fig = go.Figure(
        go.Heatmap(
            z=probs,
            x=xlabels,
            y=[str(L) for L in result.layers],
            text=[[repr(t)[1:-1] for t in r] for r in text],
            texttemplate="%{text}",
            textfont=dict(size=9),
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar=dict(title="p(top)"),
            hovertemplate="layer %{y}<br>input %{x}<br>top %{text}<br>p=%{z:.3f}<extra></extra>",
        )
    )
    style(
        fig,
        title=title or f"{result.lens.capitalize()} lens: top token per layer and position",
        x="input position: token",
        y="layer (resid_post)",
        width=max(600, 70 * len(xlabels) + 150),
        height=max(420, 18 * len(result.layers) + 150),
    )
    fig.update_xaxes(tickangle=-45)
    return fig


def target_curve(
    results: Union[LensResult, dict[str, LensResult]],
    *,
    row: int = 0,
    position: int = -1,
    title: Optional[str] = None,
) -> go.Figure:
    """Probability of each target token across layers at ``position`` — one line per target and per
    labelled run (e.g. ``{"unsteered": r0, "steered at L6": r1}``)."""
    if isinstance(results, LensResult):
        results = {results.lens: results}
    fig = go.Figure()
    dashes = ["solid", "dash", "dot", "dashdot"]
    for ri, (label, res) in enumerate(results.items()):
        if not res.target_ids:
            raise ValueError(f"result '{label}' has no targets; pass targets=[...] to logit_lens")
        for ti, tok in enumerate(res.target_tokens):
            fig.add_trace(
                go.Scatter(
                    x=res.layers,
                    y=res.target_probs[row, :, position, ti].numpy(),
                    mode="lines+markers",
                    name=f"{tok!r} ({label})",
                    line=dict(color=PALETTE[ti % len(PALETTE)], dash=dashes[ri % len(dashes)]),
                )
            )
    style(fig, title=title or "Target-token probability across layers", x="layer (resid_post)", y="probability")
    fig.update_yaxes(range=[0, 1])
    return fig


def kl_figure(kl: dict[str, Tensor], *, title: Optional[str] = None) -> go.Figure:
    """KL to the final distribution per layer (nats, log scale): logit lens vs tuned lens. The last
    layer (KL exactly 0 for both: its lens is the output) is left out of the log-scale plot."""
    fig = go.Figure()
    for i, (name, v) in enumerate(kl.items()):
        v = torch.as_tensor(v)[:-1]
        fig.add_trace(
            go.Scatter(
                x=list(range(len(v))),
                y=v.clamp(min=1e-6).numpy(),
                mode="lines+markers",
                name=f"{name} lens",
                line=dict(color=PALETTE[i % len(PALETTE)]),
            )
        )
    style(
        fig,
        title=title or "KL(final ‖ lens) by layer on held-out text (last layer: 0)",
        x="layer (resid_post)",
        y="KL (nats, log scale)",
    )
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)]
    fig.update_yaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    return fig


__all__ = [
    "SEED_PROMPTS",
    "LensResult",
    "TunedLens",
    "TunedLensConfig",
    "cache_residuals",
    "default_tuned_lens_path",
    "final_norm",
    "kl_figure",
    "kl_to_final",
    "lens_corpus",
    "lens_heatmap",
    "lens_kl_by_layer",
    "lens_logits",
    "logit_lens",
    "read_lens",
    "residuals",
    "target_curve",
    "target_ids",
    "train_default_tuned_lens",
    "train_tuned_lens",
]


# --------------------------------------------------------------------------- corpus and the default lens
SEED_PROMPTS = (
    "The history of the city",
    "In the morning, the farmers",
    "Scientists have discovered that",
    "The best way to learn",
    "Once upon a time, there was",
    "The weather today is",
    "My favourite book is",
    "The government announced",
    "Water is important because",
    "In the year 1850,",
    "The recipe calls for",
    "Football is a sport",
    "The children walked to school",
    "Mathematics is the study of",
    "The old house on the hill",
    "Music can help",
    "A good friend is someone who",
    "The river flows through",
    "Computers are used to",
    "The museum opened",
    "Doctors recommend that",
    "The train left the station",
    "Birds build their nests",
    "The meeting was about",
)


def lens_corpus(
    model, n_seq: int = 24, seq_len: int = 64, *, seed: int = 0, cache: bool = True, progress: bool = True
) -> Int[Tensor, "n_seq seq_len"]:
    """Offline English text for the tuned lens: the model's own sampled continuations (temperature 1,
    top-p 0.95) of short, varied English openings, cut to ``seq_len`` tokens. Cached as safetensors
    (token ids) under the workbench cache. Text the model writes is on its own distribution, which is
    what the translators are fitted to."""
    from safetensors.torch import load_file, save_file

    from .models import cache_dir

    if n_seq < 1 or seq_len < 8:
        raise ValueError(f"need n_seq >= 1 and seq_len >= 8, got {n_seq}, {seq_len}")
    path = (
        cache_dir()
        / "tuned_lens"
        / f"corpus_{(model.cfg.model_name or 'model').replace('/', '_')}_{n_seq}x{seq_len}_s{seed}.safetensors"
    )
    if cache and path.exists():
        return load_file(str(path))["tokens"].long()
    reg = HookRegistry(model)
    prompts = [SEED_PROMPTS[i % len(SEED_PROMPTS)] for i in range(n_seq)]
    rows = []
    for i in range(0, n_seq, 12):
        gen = reg.generate(
            prompts[i : i + 12],
            max_new_tokens=seq_len,
            temperature=1.0,
            top_p=0.95,
            seed=seed + i,
            stop_at_eos=False,
            progress=progress,
        )
        for b in range(gen.tokens.shape[0]):
            ids = gen.tokens[b][gen.attention_mask[b].bool()]
            rows.append(ids[:seq_len])
    tokens = torch.stack(rows, 0)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"tokens": tokens.to(torch.int32).contiguous()}, str(path))
    return tokens


def train_default_tuned_lens(
    model,
    *,
    n_seq: int = 24,
    seq_len: int = 64,
    heldout: int = 6,
    config: Optional[TunedLensConfig] = None,
    console=None,
    figures: Optional[Union[str, Path]] = None,
    progress: bool = True,
):
    """Build the corpus, cache residuals, train the tuned lens, save it to ``default_tuned_lens_path``,
    and measure KL to the final layer on held-out sequences for both lenses (figure ``tuned_lens_kl``).
    Returns (``{"logit": kl, "tuned": kl}``, path)."""
    from .experiments.export import save_figure

    if not 0 < heldout < n_seq:
        raise ValueError(f"heldout must be between 1 and n_seq-1, got {heldout} of {n_seq}")
    config = config or TunedLensConfig(steps=400, tokens_per_step=32, layers_per_step=0, max_seconds=300)
    tokens = lens_corpus(model, n_seq, seq_len, progress=progress)
    train_resid = cache_residuals(model, tokens[:-heldout], progress=progress)
    test_resid = cache_residuals(model, tokens[-heldout:], progress=progress)
    t0 = time.perf_counter()
    tl, losses = train_tuned_lens(model, train_resid, config, progress=progress)
    seconds = time.perf_counter() - t0
    kl = lens_kl_by_layer(model, test_resid, tl)
    path = default_tuned_lens_path(model)
    tl.save(
        path,
        {
            "config": asdict(config),
            "train_tokens": int(train_resid.shape[1]),
            "heldout_tokens": int(test_resid.shape[1]),
            "steps_run": len(losses),
            "train_seconds": seconds,
            "final_loss": losses[-1] if losses else None,
            "heldout_kl_logit": kl["logit"].tolist(),
            "heldout_kl_tuned": kl["tuned"].tolist(),
            "corpus": f"model-generated continuations of {len(SEED_PROMPTS)} openings, {n_seq}x{seq_len} tokens",
            "corpus_args": {"n_seq": n_seq, "seq_len": seq_len, "heldout": heldout},
        },
    )
    save_figure(kl_figure(kl), "tuned_lens_kl", directory=figures)
    if console is not None:
        from rich.table import Table

        t = Table(
            title=f"KL(final ‖ lens) on {test_resid.shape[1]} held-out tokens (nats); trained {len(losses)} steps in {seconds:.0f} s"
        )
        for c in ("layer", "logit lens", "tuned lens"):
            t.add_column(c)
        for L in range(len(kl["logit"])):
            t.add_row(str(L), f"{kl['logit'][L]:.3f}", f"{kl['tuned'][L]:.3f}")
        console.print(t)
    return kl, path
