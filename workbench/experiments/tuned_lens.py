"""The default tuned lens of a model: corpus (cached on disk), residuals, training, held-out KL, the
saved lens, the ``tuned_lens_kl`` figure and a printed table.

Files (in the user cache, ``workbench.paths.cache_dir()``, through ``workbench.artifacts``):

* ``tuned_lens/corpus_<model>_<n>x<len>_s<seed>.{safetensors,json}``: the model-written corpus
  (kind ``"lens_corpus"``), reused only when its sidecar names the same model fingerprint and sizes;
* ``tuned_lens/<model>.{safetensors,json}``: the trained lens (kind ``"tuned_lens"``), with the
  training record (config, steps, seconds, held-out KL of both lenses, the corpus split).
"""

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from workbench.artifacts import ArtifactError, load_tensors, save_tensors
from workbench.lens import (
    TunedLens,
    TunedLensConfig,
    cache_residuals,
    lens_corpus,
    lens_kl_by_layer,
    model_fingerprint,
    train_tuned_lens,
)
from workbench.paths import cache_dir
from workbench.prompts import text_openings
from workbench.validation import check_int

CORPUS_KIND = "lens_corpus"


def _model_stem(model) -> str:
    return (model.cfg.model_name or "model").replace("/", "_")


def default_tuned_lens_path(model, cache: str | os.PathLike | None = None) -> Path:
    """Where the default tuned lens of ``model`` lives: ``<cache>/tuned_lens/<model>.safetensors``
    (its sidecar is ``<model>.json``)."""
    return cache_dir(cache) / "tuned_lens" / f"{_model_stem(model)}.safetensors"


def corpus_path(model, n_seq: int, seq_len: int, seed: int = 0, cache: str | os.PathLike | None = None) -> Path:
    return cache_dir(cache) / "tuned_lens" / f"corpus_{_model_stem(model)}_{n_seq}x{seq_len}_s{seed}.safetensors"


def cached_lens_corpus(
    model,
    n_seq: int = 24,
    seq_len: int = 64,
    *,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
) -> Tensor:
    """``workbench.lens.lens_corpus``, kept on disk: a saved corpus is reused when its sidecar records
    the same model fingerprint, sizes and seed; otherwise it is generated and (re)written."""
    path = corpus_path(model, n_seq, seq_len, seed, cache)
    want = {**model_fingerprint(model), "n_seq": n_seq, "seq_len": seq_len, "seed": seed}
    if path.exists():
        try:
            tensors, meta = load_tensors(path, kind=CORPUS_KIND, required_tensors=("tokens",))
            if all(meta.get(k) == v for k, v in want.items()):
                return tensors["tokens"].long()
        except ArtifactError:
            pass  # an unreadable or foreign file: regenerate and overwrite it
    tokens = lens_corpus(model, n_seq, seq_len, seed=seed, progress=progress)
    save_tensors(path, {"tokens": tokens.to(torch.int32)}, want, kind=CORPUS_KIND, version=1)
    return tokens


def train_default_tuned_lens(
    model,
    *,
    n_seq: int = 24,
    seq_len: int = 64,
    heldout: int = 6,
    config: Optional[TunedLensConfig] = None,
    console=None,
    figures: str | Path | None = None,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[dict[str, Tensor], Path]:
    """Build (or reuse) the corpus, cache residuals, train the tuned lens, save it to
    ``default_tuned_lens_path``, and measure KL to the final distribution on held-out sequences for
    both lenses (figure ``tuned_lens_kl``; a table on ``console`` when given).
    Returns (``{"logit": kl, "tuned": kl}``, path)."""
    from workbench.experiments.export import save_figure
    from workbench.plots.lens import kl_figure

    check_int("n_seq", n_seq, min=2)
    check_int("heldout", heldout, min=1, max=n_seq - 1)
    config = config or TunedLensConfig(steps=400, tokens_per_step=32, layers_per_step=0, max_seconds=300)
    tokens = cached_lens_corpus(model, n_seq, seq_len, cache=cache, progress=progress)
    train_resid = cache_residuals(model, tokens[:-heldout], progress=progress)
    test_resid = cache_residuals(model, tokens[-heldout:], progress=progress)
    t0 = time.perf_counter()
    tl, losses = train_tuned_lens(model, train_resid, config, progress=progress)
    seconds = time.perf_counter() - t0
    kl = lens_kl_by_layer(model, test_resid, tl)
    path = default_tuned_lens_path(model, cache)
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
            "corpus": f"model-generated continuations of {len(text_openings())} openings, {n_seq}x{seq_len} tokens",
            "corpus_args": {"n_seq": n_seq, "seq_len": seq_len, "heldout": heldout},
        },
    )
    save_figure(kl_figure(kl), "tuned_lens_kl", directory=figures)
    if console is not None:
        console.print(kl_table(kl, test_resid.shape[1], len(losses), seconds))
    return kl, path


def heldout_kl_of_default_lens(model, cache: str | os.PathLike | None = None, progress: bool = True):
    """The saved default lens and its held-out KL, recomputed on the corpus split it records.
    Returns ``(kl, lens)``; raises ``FileNotFoundError`` when there is no saved lens."""
    path = default_tuned_lens_path(model, cache)
    if not path.exists():
        raise FileNotFoundError(f"no tuned lens at {path}; train one with `workbench lens --train-tuned`")
    lens = TunedLens.load(path, model)
    args = lens.metadata.get("corpus_args")
    if not isinstance(args, dict) or not {"n_seq", "seq_len", "heldout"} <= set(args):
        raise ArtifactError(f"{path.with_suffix('.json')}: field 'corpus_args' is missing or incomplete")
    tokens = cached_lens_corpus(model, args["n_seq"], args["seq_len"], cache=cache, progress=progress)
    test = cache_residuals(model, tokens[-args["heldout"] :], progress=False)
    return lens_kl_by_layer(model, test, lens), lens


def kl_table(kl: dict[str, Tensor], n_tokens: int, steps: int, seconds: float):
    """A rich table of KL(final ‖ lens) per layer for the logit and tuned lenses."""
    from rich.table import Table

    t = Table(title=f"KL(final ‖ lens) on {n_tokens} held-out tokens (nats); trained {steps} steps in {seconds:.0f} s")
    for c in ("layer", "logit lens", "tuned lens"):
        t.add_column(c)
    for L in range(len(kl["logit"])):
        t.add_row(str(L), f"{kl['logit'][L]:.3f}", f"{kl['tuned'][L]:.3f}")
    return t


__all__ = [
    "CORPUS_KIND",
    "cached_lens_corpus",
    "corpus_path",
    "default_tuned_lens_path",
    "heldout_kl_of_default_lens",
    "kl_table",
    "train_default_tuned_lens",
]
