"""Lenses: read the model's running prediction off the residual stream of every layer.

* ``workbench.lens.logit``: the logit lens (nostalgebraist 2020) through the model's own readout,
  for long texts too: only the asked layers and positions are read, the readout runs in chunks
  (never a ``[layer, pos, vocab]`` tensor), with targets-only, top-k-only and KL-optional modes;
* ``workbench.lens.tuned``: the tuned lens (Belrose et al. 2023), bound to the model it was trained on.

Figures are in ``workbench.plots.lens``; the default tuned lens of a model (corpus cached on disk,
training, figure) is ``workbench.experiments.tuned_lens.train_default_tuned_lens``.
"""

from ..readout import final_norm
from .logit import (
    LensResult,
    check_layers,
    check_positions,
    kl_to_final,
    lens_logits,
    logit_lens,
    read_lens,
    residuals,
    target_ids,
)
from .tuned import (
    TUNED_LENS_KIND,
    TunedLens,
    TunedLensConfig,
    cache_residuals,
    lens_corpus,
    lens_kl_by_layer,
    model_fingerprint,
    train_tuned_lens,
    unembedding_hash,
)

__all__ = [
    "TUNED_LENS_KIND",
    "LensResult",
    "TunedLens",
    "TunedLensConfig",
    "cache_residuals",
    "check_layers",
    "check_positions",
    "final_norm",
    "kl_to_final",
    "lens_corpus",
    "lens_kl_by_layer",
    "lens_logits",
    "logit_lens",
    "model_fingerprint",
    "read_lens",
    "residuals",
    "target_ids",
    "train_tuned_lens",
    "unembedding_hash",
]
