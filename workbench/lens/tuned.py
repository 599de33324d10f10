"""The tuned lens (Belrose et al. 2023, "Eliciting latent predictions from transformers with the tuned
lens"): ``logits_L = readout(h_L + A_L h_L + b_L)`` with a per-layer affine translator ``(A_L, b_L)``,
zero-initialised (so training starts at the logit lens) and trained to minimise ``KL(p_final ‖ p_L)``
on corpus text. ``readout`` is ``workbench.readout.resid_to_logits`` (final norm, unembedding,
output soft-cap), so ``p_final`` is the model's real output distribution.

A lens belongs to one model. It records the model's fingerprint (name, ``n_layers``, ``d_model``,
``d_vocab`` and a hash of the unembedding, as the tuned-lens library does with its
``unembedding_hash``) and refuses, on load and on use, a model whose fingerprint differs.
Saved lenses go through ``workbench.artifacts`` (kind ``"tuned_lens"``).
"""

import contextlib
import hashlib
import os
import time
import weakref
from dataclasses import dataclass
from typing import Any, Optional

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from ..artifacts import KIND_KEY, VERSION_KEY, ArtifactError, load_tensors, save_tensors
from ..prompts import text_openings
from ..readout import resid_to_logits
from ..registry import HookRegistry
from ..validation import check_fields, check_int
from .logit import residuals

TUNED_LENS_KIND = "tuned_lens"
_FINGERPRINT_KEYS = ("model_name", "n_layers", "d_model", "d_vocab", "unembed_hash")


# --------------------------------------------------------------------------- which model a lens is for
def unembedding_hash(model) -> str:
    """SHA-256 of the unembedding ``W_U`` and ``b_U`` (shapes included), rounded to bfloat16 first so
    that the same weights loaded in float32 or bfloat16 hash alike (the tuned-lens library hashes its
    unembedding matrix for the same purpose)."""
    h = hashlib.sha256()
    for t in (model.W_U, model.b_U):
        t = t.detach().to("cpu", torch.bfloat16).contiguous()
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.int16).numpy().tobytes())
    return h.hexdigest()


def model_fingerprint(model) -> dict[str, Any]:
    """What identifies the model a tuned lens was trained on."""
    cfg = model.cfg
    return {
        "model_name": str(cfg.model_name or "model"),
        "n_layers": int(cfg.n_layers),
        "d_model": int(cfg.d_model),
        "d_vocab": int(cfg.d_vocab),
        "unembed_hash": unembedding_hash(model),
    }


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class TunedLensConfig:
    """Training settings for the tuned lens (Belrose et al. 2023 use SGD with Nesterov momentum and
    large batches; on a CPU budget we use Adam with small steps).

    Adam moves every entry by about its learning rate, so the two parts get their own: ``lr`` for the
    bias, in units of the layer's residual RMS (the bias of layer L steps by ``lr · rms(h_L)``, so that
    its relative effect is the same at every depth), and ``lr_weight`` for ``A_L``, whose step acts on
    all ``d_model`` inputs at once and so must be much smaller."""

    steps: int = 60  # optimiser steps (upper bound when max_seconds is set)
    tokens_per_step: int = 64  # residual rows sampled per step (all layers see the same rows)
    lr: float = 1e-2  # bias step, in units of the layer's residual RMS
    lr_weight: float = 1e-4  # A_L step (0 = train the biases only)
    weight_decay: float = 0.0  # Adam's L2 penalty
    layers_per_step: int = 0  # 0 = every layer each step; n > 0 = a random subset of n layers per step
    max_seconds: float = 0.0  # wall-clock budget; 0 = no time limit
    seed: int = 0  # sampling of rows and layers

    def __post_init__(self) -> None:
        check_fields(
            self,
            steps={"kind": "int", "min": 1},
            tokens_per_step={"kind": "int", "min": 1},
            lr={"kind": "float", "min": 0.0, "min_open": True},
            lr_weight={"kind": "float", "min": 0.0},
            weight_decay={"kind": "float", "min": 0.0},
            layers_per_step={"kind": "int", "min": 0},
            max_seconds={"kind": "float", "min": 0.0},
            seed={"kind": "int", "min": 0},
        )


# --------------------------------------------------------------------------- the lens
class TunedLens(nn.Module):
    """Per-layer affine translators ``h ↦ h + A_L h + b_L`` (zero-initialised: starts as the logit
    lens). The last layer keeps the identity (its lens is the model's output).

    ``fingerprint`` (from ``model_fingerprint``) names the model the lens is for; ``for_model`` sets
    it. ``check(model)`` refuses any other model; every use (``logits``, training, ``logit_lens``)
    calls it."""

    def __init__(self, n_layers: int, d_model: int, *, fingerprint: Optional[dict] = None) -> None:
        super().__init__()
        check_int("n_layers", n_layers, min=1)
        check_int("d_model", d_model, min=1)
        if fingerprint is not None:
            missing = [k for k in _FINGERPRINT_KEYS if k not in fingerprint]
            if missing or fingerprint["n_layers"] != n_layers or fingerprint["d_model"] != d_model:
                raise ValueError(
                    f"fingerprint {fingerprint} does not describe a lens of n_layers={n_layers}, d_model={d_model}"
                    + (f" (missing {missing})" if missing else "")
                )
        self.n_layers, self.d_model = n_layers, d_model
        self.fingerprint = dict(fingerprint) if fingerprint is not None else None
        self.metadata: dict[str, Any] = {}
        self.weight = nn.ParameterList([nn.Parameter(torch.zeros(d_model, d_model)) for _ in range(n_layers)])
        self.bias = nn.ParameterList([nn.Parameter(torch.zeros(d_model)) for _ in range(n_layers)])
        self._verified: Optional[tuple] = None  # (weakref to W_U, its version, weakref to b_U, its version)

    @classmethod
    def for_model(cls, model) -> "TunedLens":
        lens = cls(model.cfg.n_layers, model.cfg.d_model, fingerprint=model_fingerprint(model))
        return lens.to(model.cfg.device)

    def _is_verified(self, model) -> bool:
        v = self._verified
        return (
            v is not None
            and v[0]() is model.W_U
            and v[1] == model.W_U._version
            and v[2]() is model.b_U
            and v[3] == model.b_U._version
        )

    def check(self, model) -> "TunedLens":
        """Raise ``ValueError`` unless ``model`` is the model this lens was trained for: same
        ``n_layers`` and ``d_model`` always; with a fingerprint, also the same ``d_vocab`` and
        unembedding hash. (The hash is recomputed only when the unembedding changed.)"""
        cfg = model.cfg
        for key, ours, theirs in (("n_layers", self.n_layers, cfg.n_layers), ("d_model", self.d_model, cfg.d_model)):
            if ours != theirs:
                raise ValueError(
                    f"this tuned lens is for a model with {key}={ours}"
                    + (f" ({self.fingerprint['model_name']})" if self.fingerprint else "")
                    + f", but the model has {key}={theirs} ({cfg.model_name})"
                )
        if self.fingerprint is None or self._is_verified(model):
            return self
        fp = model_fingerprint(model)
        for key in ("d_vocab", "unembed_hash"):
            if fp[key] != self.fingerprint[key]:
                raise ValueError(
                    f"this tuned lens was trained on '{self.fingerprint['model_name']}', but the model "
                    f"'{fp['model_name']}' differs in {key} ({self.fingerprint[key]!s:.16} vs {fp[key]!s:.16}); "
                    "a tuned lens only reads the model it was trained on"
                )
        self._verified = (weakref.ref(model.W_U), model.W_U._version, weakref.ref(model.b_U), model.b_U._version)
        return self

    def translate(self, h: Float[Tensor, "... d_model"], layer: int) -> Float[Tensor, "... d_model"]:
        check_int("layer", layer, min=0, max=self.n_layers - 1)
        if layer == self.n_layers - 1:
            return h
        return h + h @ self.weight[layer].T + self.bias[layer]

    def logits(self, model, h: Float[Tensor, "... d_model"], layer: int) -> Float[Tensor, "... d_vocab"]:
        """Tuned lens: ``resid_to_logits(h + A_L h + b_L)``."""
        self.check(model)
        return resid_to_logits(model, self.translate(h, layer))

    def save(self, path: str | os.PathLike, metadata: Optional[dict] = None):
        """Write ``<stem>.safetensors`` (``weight [layer, d, d]``, ``bias [layer, d]``) and the
        ``<stem>.json`` sidecar (the model's fingerprint plus ``metadata``) through
        ``workbench.artifacts``. Returns the stem."""
        if self.fingerprint is None:
            raise ValueError("this tuned lens records no model; create it with TunedLens.for_model(model) to save it")
        metadata = dict(metadata or {})
        clash = sorted(set(metadata) & {*_FINGERPRINT_KEYS, KIND_KEY, VERSION_KEY})
        if clash:
            raise ValueError(f"metadata keys {clash} are reserved for the model's fingerprint")
        tensors = {
            "weight": torch.stack([w.detach() for w in self.weight]),
            "bias": torch.stack([b.detach() for b in self.bias]),
        }
        return save_tensors(path, tensors, {**self.fingerprint, **metadata}, kind=TUNED_LENS_KIND, version=1)

    @classmethod
    def load(cls, path: str | os.PathLike, model=None) -> "TunedLens":
        """Read a lens written by ``save``. With ``model``, refuse it at once unless it is the model
        the lens was trained for; without, the check happens at first use."""
        tensors, meta = load_tensors(
            path, kind=TUNED_LENS_KIND, required_tensors=("weight", "bias"), required_meta=_FINGERPRINT_KEYS
        )
        n, d = int(meta["n_layers"]), int(meta["d_model"])
        if tuple(tensors["weight"].shape) != (n, d, d) or tuple(tensors["bias"].shape) != (n, d):
            raise ArtifactError(
                f"{path}: tensors weight {tuple(tensors['weight'].shape)} / bias {tuple(tensors['bias'].shape)} do "
                f"not match the fields n_layers={n}, d_model={d}"
            )
        lens = cls(n, d, fingerprint={k: meta[k] for k in _FINGERPRINT_KEYS})
        header = (*_FINGERPRINT_KEYS, KIND_KEY, VERSION_KEY)
        lens.metadata = {k: v for k, v in meta.items() if k not in header}
        with torch.no_grad():
            for L in range(n):
                lens.weight[L].copy_(tensors["weight"][L])
                lens.bias[L].copy_(tensors["bias"][L])
        if model is not None:
            lens.check(model)
            lens.to(model.cfg.device)
        return lens


# --------------------------------------------------------------------------- data and training
def lens_corpus(
    model, n_seq: int = 24, seq_len: int = 64, *, seed: int = 0, progress: bool = True
) -> Int[Tensor, "n_seq seq_len"]:
    """Offline English text for the tuned lens: the model's own sampled continuations (temperature 1,
    top-p 0.95) of ``workbench.prompts.text_openings()``, cut to ``seq_len`` tokens. Text the model
    writes is on its own distribution, which is what the translators are fitted to. Nothing is
    cached here (``workbench.experiments.tuned_lens.cached_lens_corpus`` keeps it on disk)."""
    check_int("n_seq", n_seq, min=1)
    check_int("seq_len", seq_len, min=8)
    check_int("seed", seed, min=0)
    if getattr(model, "tokenizer", None) is None:
        raise ValueError("lens_corpus needs a model with a tokenizer (it generates text from English openings)")
    openings = text_openings()
    reg = HookRegistry(model)
    prompts = [openings[i % len(openings)] for i in range(n_seq)]
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
    return torch.stack(rows, 0).cpu()


def cache_residuals(
    model, tokens: Int[Tensor, "n_seq seq"], *, batch_size: int = 8, progress: bool = True
) -> Float[Tensor, "layer n_tokens d_model"]:
    """``resid_post`` of every layer over ``tokens`` (read by probes; the pass stops after the last
    block, so the unembedding is never computed), flattened to ``[layer, n_seq·seq, d_model]``."""
    from tqdm.auto import tqdm

    check_int("batch_size", batch_size, min=1)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [n_seq, seq], got {tuple(tokens.shape)}")
    out = []
    for i in tqdm(range(0, tokens.shape[0], batch_size), desc="caching residuals", disable=not progress):
        out.append(residuals(model, tokens[i : i + batch_size]).flatten(1, 2))
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


def _check_resid(model, resid: Tensor) -> None:
    n_layers, d = model.cfg.n_layers, model.cfg.d_model
    if resid.ndim != 3 or resid.shape[0] != n_layers or resid.shape[-1] != d or resid.shape[1] == 0:
        raise ValueError(f"resid must be [n_layers={n_layers}, n_tokens > 0, d_model={d}], got {tuple(resid.shape)}")


def train_tuned_lens(
    model,
    resid: Float[Tensor, "layer n_tokens d_model"],
    config: TunedLensConfig = TunedLensConfig(),
    *,
    lens: Optional[TunedLens] = None,
    progress: bool = True,
) -> tuple[TunedLens, list[float]]:
    """Fit translators to minimise the mean over layers of ``KL(p_final ‖ p_L)`` (Belrose et al.
    2023) on cached residuals (``resid[-1]`` is the last layer's, whose readout is the model output).
    Returns the lens (bound to ``model``) and the loss per step."""
    from tqdm.auto import tqdm

    if not isinstance(config, TunedLensConfig):
        raise TypeError(f"config must be a TunedLensConfig, got {type(config).__name__}")
    _check_resid(model, resid)
    n_layers = model.cfg.n_layers
    lens = lens.check(model) if lens is not None else TunedLens.for_model(model)
    if lens.fingerprint is None:  # a lens built by shape alone belongs to the model it is trained on
        lens.fingerprint = model_fingerprint(model)
    g = torch.Generator().manual_seed(config.seed)
    rms = resid.pow(2).mean((1, 2)).sqrt()  # residual scale per layer
    groups = []
    for L in range(n_layers - 1):
        groups.append({"params": [lens.bias[L]], "lr": config.lr * float(rms[L])})
        if config.lr_weight > 0:
            groups.append({"params": [lens.weight[L]], "lr": config.lr_weight})
    trainable = list(range(n_layers - 1))
    if not groups:  # a one-layer model: its only lens is the output itself
        return lens, []
    opt = torch.optim.Adam(groups, weight_decay=config.weight_decay)
    losses: list[float] = []
    t0 = time.perf_counter()
    n_tok = resid.shape[1]
    for _ in tqdm(range(config.steps), desc="training tuned lens", disable=not progress):
        idx = torch.randint(0, n_tok, (min(config.tokens_per_step, n_tok),), generator=g)
        with torch.no_grad():
            target = resid_to_logits(model, resid[-1, idx]).float().log_softmax(-1)
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
                lp = lens.logits(model, resid[L, idx], L).float().log_softmax(-1)
                loss = (p_target * (target - lp)).sum(-1).mean() / len(layers)
                loss.backward()
                total += loss.item()
        opt.step()
        losses.append(total)
        if config.max_seconds and time.perf_counter() - t0 > config.max_seconds:
            break
    return lens, losses


def lens_kl_by_layer(
    model, resid: Float[Tensor, "layer n_tokens d_model"], tuned: Optional[TunedLens] = None, *, chunk: int = 256
) -> dict[str, Tensor]:
    """Mean ``KL(p_final ‖ p_L)`` (nats) per layer over held-out residuals, for the logit lens and
    (when given) the tuned lens: ``{"logit": [n_layers], "tuned": [n_layers]}``. ``p_final`` is the
    model's output distribution (the readout of the last layer's residual, soft-cap included).
    Computed by the lens's chunked readout (``chunk`` tokens at a time, KL only)."""
    from .logit import _lens_stats

    _check_resid(model, resid)
    check_int("chunk", chunk, min=1)
    if tuned is not None:
        tuned.check(model)
    n_layers = resid.shape[0]
    layers = list(range(n_layers))
    out = {}
    with torch.no_grad():
        for name, translator in (("logit", None), ("tuned", tuned)):
            if name == "tuned" and tuned is None:
                continue
            st = _lens_stats(
                model,
                resid,
                layers,
                k=0,
                tids=[],
                final_resid=resid[-1],
                final_logits=None,
                kl=True,
                translator=translator,
                chunk_size=chunk,
            )
            out[name] = st.kl.mean(1)  # type: ignore[union-attr]
    return out


__all__ = [
    "TUNED_LENS_KIND",
    "TunedLens",
    "TunedLensConfig",
    "cache_residuals",
    "lens_corpus",
    "lens_kl_by_layer",
    "model_fingerprint",
    "train_tuned_lens",
    "unembedding_hash",
]
