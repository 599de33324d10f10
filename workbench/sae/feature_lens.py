"""The logit lens of SAE features (Arad, Mueller & Belinkov 2025; METHODS.md section 2).

For feature ``i`` with decoder direction ``d_i`` (:func:`workbench.sae.steering.decoder_directions`),

    p_i = softmax(readout(d_i)),        readout(h) = softcap(W_U · LN_f(h) + b_U),

the model's own final norm, unembedding and output soft-cap (:func:`workbench.readout.resid_to_logits`,
the one residual-to-logits map of workbench; Gemma-2 caps its logits at 30). ``T_i`` is the set of
the ``k = 20`` tokens with the highest ``p_i``; the input and output scores are measured against it.

:class:`FeatureLens` is the result table (top / bottom tokens per feature), not a lens object.
"""

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..artifacts import load_tensors, save_tensors
from ..readout import resid_to_logits
from ..validation import check_int
from .loading import sae_site
from .steering import decoder_directions, feature_indices

LOGIT_LENS_K = 20
FEATURE_LENS_KIND = "sae_feature_lens"
_FIELDS = ("top_tokens", "top_probs", "top_logits", "bottom_tokens", "bottom_logits")


@dataclass(frozen=True)
class FeatureLens:
    """Per feature: the ``k`` top tokens of ``p_i`` (with probabilities and logits) and the
    ``n_bottom`` lowest-logit tokens. Rows of features that were not computed hold token -1 and NaN."""

    top_tokens: Int[Tensor, "d_sae k"]
    top_probs: Float[Tensor, "d_sae k"]
    top_logits: Float[Tensor, "d_sae k"]
    bottom_tokens: Int[Tensor, "d_sae n_bottom"]
    bottom_logits: Float[Tensor, "d_sae n_bottom"]

    @property
    def k(self) -> int:
        return self.top_tokens.shape[1]

    @property
    def computed(self) -> Tensor:
        """``[d_sae]`` bool: which features have a lens."""
        return (self.top_tokens >= 0).all(1)

    def save(self, path: Union[str, Path]) -> Path:
        """Write ``<path>.safetensors`` + ``<path>.json`` (artifact kind ``sae_feature_lens``). The NaN
        rows of uncomputed features are stored as 0 and restored from ``top_tokens == -1`` on load."""
        keep = self.computed
        tensors = {}
        for name in _FIELDS:
            t = getattr(self, name)
            tensors[name] = torch.where(keep[:, None], t, torch.zeros_like(t)) if t.is_floating_point() else t
        return save_tensors(path, tensors, {"d_sae": int(keep.numel()), "k": self.k}, kind=FEATURE_LENS_KIND, version=1)

    @classmethod
    def load(cls, path: Union[str, Path]) -> "FeatureLens":
        t, _ = load_tensors(path, kind=FEATURE_LENS_KIND, required_tensors=_FIELDS)
        keep = (t["top_tokens"] >= 0).all(1)
        nan = float("nan")
        for name in ("top_probs", "top_logits", "bottom_logits"):
            t[name] = torch.where(keep[:, None], t[name], torch.full_like(t[name], nan))
        return cls(**{k: t[k] for k in _FIELDS})


def logit_lens_logits(model, directions: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_vocab"]:
    """``readout(d)`` for each row ``d``: the model's final norm, unembedding and soft-cap."""
    if directions.ndim != 2 or directions.shape[1] != model.cfg.d_model:
        raise ValueError(f"directions must be [n, d_model={model.cfg.d_model}], got {tuple(directions.shape)}")
    with torch.no_grad():
        return resid_to_logits(model, directions.to(model.cfg.device, model.cfg.dtype)).float()


def feature_logit_lens(
    model,
    sae,
    *,
    k: int = LOGIT_LENS_K,
    n_bottom: int = 10,
    chunk: int = 256,
    features: Optional[Union[Sequence[int], Tensor]] = None,
) -> FeatureLens:
    """The logit lens of every feature: ``p_i = softmax(readout(d_i))`` and its top-``k`` tokens.

    With ``features``, only those rows are computed (the unembedding of all features is the costly
    part); the other rows hold token -1 and NaN, and count as "no lens" downstream."""
    check_int("k", k, min=1, max=model.cfg.d_vocab)
    check_int("n_bottom", n_bottom, min=1, max=model.cfg.d_vocab)
    check_int("chunk", chunk, min=1)
    sae_site(sae, model)
    d_sae = sae.cfg.d_sae
    idx = feature_indices(sae, features)
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
        return FeatureLens(*parts)
    full = []
    for x in parts:
        fill = -1 if not x.is_floating_point() else float("nan")
        y = torch.full((d_sae, x.shape[1]), fill, dtype=x.dtype)
        y[idx] = x
        full.append(y)
    return FeatureLens(*full)


def lens_top_tokens(model, sae, lens: Optional[FeatureLens], k: int, idx: Tensor) -> Int[Tensor, "d_sae k"]:
    """``T_i`` for the features ``idx``: from ``lens`` (refusing features it lacks), else computed."""
    if lens is not None and not isinstance(lens, FeatureLens):
        raise TypeError(f"lens must be a FeatureLens (from feature_logit_lens), got {type(lens).__name__}")
    if lens is not None and lens.top_tokens.shape[0] != sae.cfg.d_sae:
        raise ValueError(f"the lens has {lens.top_tokens.shape[0]} rows but the SAE has {sae.cfg.d_sae} features")
    top = (lens if lens is not None else feature_logit_lens(model, sae, k=k, features=idx)).top_tokens
    missing = idx[(top[idx] < 0).any(1)]
    if missing.numel():
        raise ValueError(
            f"the logit lens was not computed for features {missing[:8].tolist()}...; "
            "pass a lens computed for them (feature_logit_lens(..., features=...))"
        )
    return top


def __getattr__(name: str):
    if name == "LogitLens":  # the old name of FeatureLens (a result table, not a lens)
        warnings.warn("LogitLens was renamed FeatureLens", DeprecationWarning, stacklevel=2)
        return FeatureLens
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LOGIT_LENS_K", "FeatureLens", "feature_logit_lens", "lens_top_tokens", "logit_lens_logits"]
