"""``workbench bench sae``: batched output scores for every latent of one SAE against the naive loop.

The baseline is the paper's procedure as written: one full forward pass of the neutral prompt per
feature, with the output-score edit applied by a registry steer at the SAE's site
(:func:`workbench.sae.scores.output_scores_naive`). Ours (:func:`workbench.sae.scores.output_scores`)
steers a different feature in every batch row and starts at the SAE's layer with the earlier
layers, and the earlier positions' keys and values, computed once.

The naive loop is timed on ``n_naive`` features (evenly spaced over the SAE) and extrapolated per
feature to all latents; the output says so. Scores are compared on that subset. The logit lens
(shared by both) is computed once, untimed. In float32 the two paths differ by rounding (different
batch shapes); a second check runs a few features with the model and SAE in float64, where the
scores come out bit-identical.
"""

import time
from typing import Optional

import torch

from workbench.experiments.bench import Timing


def default_sae_name() -> str:
    from workbench.sae.loading import list_local_saes, saes_dir

    names = list_local_saes()
    if not names:
        raise RuntimeError(f"no local SAEs in {saes_dir()}; train one with `workbench sae train` or pass --sae")
    middle = [n for n in names if "-15-" in n]
    return middle[0] if middle else names[0]


def float64_agreement(sae_name: str, features: torch.Tensor) -> dict:
    """Batched vs naive output scores on ``features`` with the model and SAE in float64, where
    rounding cannot hide a difference in the computation: how many scores are bit-identical."""
    from workbench.models import load_model
    from workbench.sae.feature_lens import feature_logit_lens
    from workbench.sae.loading import load_sae
    from workbench.sae.scores import output_scores, output_scores_naive

    model = load_model(dtype=torch.float64)
    sae = load_sae(sae_name, dtype="float64")
    lens = feature_logit_lens(model, sae, features=features)
    with torch.no_grad():
        a = output_scores(model, sae, lens, features, progress=False)
        b = output_scores_naive(model, sae, lens, features, progress=False)
    del model
    return {
        "float64_features": len(features),
        "float64_bit_identical": int((a == b).sum()),
        "float64_max_abs_diff": float((a - b).abs().max()),
    }


def run_sae_bench(
    sae_name: Optional[str] = None, *, n_naive: int = 32, batch_size: int = 256, n_float64: int = 8, console=None
) -> tuple[list[Timing], dict]:
    from workbench.models import load_model
    from workbench.sae.feature_lens import feature_logit_lens
    from workbench.sae.loading import load_sae, sae_site
    from workbench.sae.scores import output_scores, output_scores_naive

    if n_naive < 1:
        raise ValueError(f"n_naive must be >= 1, got {n_naive}")
    say = console.print if console is not None else (lambda *a, **k: None)
    name = sae_name or default_sae_name()
    model = load_model()
    sae = load_sae(name)
    site = sae_site(sae, model)
    d_sae = sae.cfg.d_sae
    say(f"SAE {name} at {site} ({d_sae} latents); computing the logit lens (shared, untimed)")
    lens = feature_logit_lens(model, sae)
    subset = torch.linspace(0, d_sae - 1, min(n_naive, d_sae)).round().long().unique()

    with torch.no_grad():
        t0 = time.perf_counter()
        batched = output_scores(model, sae, lens, batch_size=batch_size, progress=console is not None)
        t_batched = time.perf_counter() - t0
        say(f"batched: {d_sae} latents in {t_batched:.1f} s")
        t0 = time.perf_counter()
        naive = output_scores_naive(model, sae, lens, subset, progress=console is not None)
        t_naive_subset = time.perf_counter() - t0
    per_feature = t_naive_subset / len(subset)
    t_naive_all = per_feature * d_sae
    diff = (batched[subset] - naive).abs()
    rel = diff / naive.abs().clamp_min(1e-12)
    close = bool(torch.allclose(batched[subset], naive, rtol=1e-4, atol=1e-7))
    speedup = t_naive_all / t_batched
    info = {
        "sae": name,
        "site": site.short,
        "d_sae": d_sae,
        "batch_size": batch_size,
        "batched_seconds": t_batched,
        "naive_subset": len(subset),
        "naive_subset_seconds": t_naive_subset,
        "naive_seconds_per_feature": per_feature,
        "naive_seconds_extrapolated": t_naive_all,
        "speedup": speedup,
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": float(rel.max()),
        "n_exactly_equal": int((diff == 0).sum()),
        "allclose_rtol1e-4": close,
    }
    if n_float64 > 0:
        say(f"float64 check on {min(n_float64, len(subset))} of the subset's features")
        info.update(float64_agreement(name, subset[:n_float64]))
    note = f"{speedup:.0f}× faster; naive extrapolated from {len(subset)} features"
    rows = [
        Timing(
            f"batched output scores, all {d_sae} latents ({site})",
            t_batched,
            f"naive: 1 forward / feature (extrapolated to {d_sae})",
            t_naive_all,
            note,
        )
    ]
    return rows, info
