"""Replicating Arad, Mueller & Belinkov (2025) on our SAEs: input vs output scores and steering.

1. **Scores** per SAE: feature lens, output scores (batched, :func:`workbench.sae.scores.output_scores`)
   and input scores from the top examples over held-out text (one streaming pass for all SAEs).
2. **Co-occurrence** of high input and high output scores: the observed share of features with both
   ``S_in ≥ τ_in`` and ``S_out`` in the top decile of its layer, against the share expected if the
   two were independent (the product of the marginals), plus Spearman's ρ.
3. **Layer trend** of both scores.
4. **Steering** with four groups of features per layer — the highest output scores; random
   features among those with ``S_out ≥ 0.01`` (the paper's filtering: drop low-output-score
   features); random features; the lowest output scores (all among features with ≥ 10 examples, so
   their max activation is known) — by adding ``s × max activation`` of the feature on the last
   prompt token and every generated token (:func:`workbench.sae.steering.steer_feature`), for a few
   strengths ``s``. *Generation success* is the share of generated tokens in the feature's top-20
   logit-lens tokens ``T_i`` (:func:`workbench.sae.steering.generation_success`); *fluency* is the
   perplexity of the generated tokens under the unsteered model (per-row mean of
   :func:`workbench.likelihood.token_nll`). The paper reports 2–3× better steering after filtering
   by output score; :func:`summarise_steering` gives our ratios (filtered / random, high / random,
   high / low) at each strength.

Every generation row steers a different feature (per-row :class:`workbench.sae.steering.AddFeature`),
so one ``reg.generate`` call covers a whole layer × strength. Results are written through
:mod:`workbench.artifacts`; figures come from :mod:`workbench.plots.sae`.
"""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from torch import Tensor

from workbench.artifacts import read_json, save_json, save_table
from workbench.likelihood import token_nll
from workbench.paths import results_dir
from workbench.plots.sae import layer_trend_figure, score_scatter_figure, steering_figure
from workbench.registry import Generation, HookRegistry
from workbench.sae.corpus import heldout_tokens
from workbench.sae.feature_lens import feature_logit_lens
from workbench.sae.loading import sae_site
from workbench.sae.scores import output_scores
from workbench.sae.steering import AddFeature, generation_success
from workbench.sae.tables import FeatureScores, load_score_table, save_score_table, save_scores, score_table
from workbench.sae.top_examples import TopExamples, collect_top_examples
from workbench.validation import check_fields, check_float, check_probability

# Neutral openings for steered generation (the list the committed results/sae were generated with).
PREFIXES = (
    "Yesterday I",
    "The report says that",
    "In the morning,",
    "My friend told me",
    "Here is what happened:",
    "It seems that",
    "Last week we",
    "The best part is",
    "I think that",
    "According to the teacher,",
    "When I got home,",
    "The main idea is",
    "Some people believe",
    "On the other hand,",
    "We decided to",
    "This story is about",
)
HIGH, FILTERED, RANDOM, LOW = "high output score", "filtered random", "random", "low output score"
GROUPS = (HIGH, FILTERED, RANDOM, LOW)
SUMMARY_KIND = "sae_replication_summary"
FIGURE_NAMES = ("sae_scores_scatter", "sae_scores_by_layer", "sae_steering")


@dataclass(frozen=True)
class ReplicationConfig:
    """Budget of a replication run (the defaults fit ~20 minutes of a free 2-core CPU)."""

    n_rows: int = 256  # held-out sequences (128 tokens) for the top examples
    n_scored: Optional[int] = None  # output-score this many random features per SAE (None = all)
    n_steer: int = 12  # features per group and layer
    strengths: tuple[float, ...] = (2.0, 4.0, 8.0)  # s, in multiples of the feature's max activation
    n_prompts: int = 8  # prefixes per steered feature
    max_new_tokens: int = 16  # tokens generated per prefix
    temperature: float = 0.7  # sampling temperature of the generations (0 = greedy)
    min_examples: int = 10  # top examples a feature needs for an input score and for steering
    input_threshold: float = 0.5  # "high input score" for the co-occurrence
    output_quantile: float = 0.9  # "high output score" = this quantile of its layer
    filter_threshold: float = 0.01  # "filtered random": random features with S_out >= this
    seed: int = 0  # feature sampling and generation
    batch_size: int = 128  # features per output-score forward pass

    def __post_init__(self) -> None:
        check_fields(
            self,
            n_rows={"kind": "int", "min": 1},
            n_steer={"kind": "int", "min": 1},
            n_prompts={"kind": "int", "min": 1, "max": len(PREFIXES)},
            max_new_tokens={"kind": "int", "min": 1},
            temperature={"kind": "float", "min": 0.0},
            min_examples={"kind": "int", "min": 1},
            input_threshold={"kind": "prob", "open_low": True},
            output_quantile={"kind": "prob", "open_low": True, "open_high": True},
            filter_threshold={"kind": "prob"},
            seed={"kind": "int", "min": 0},
            batch_size={"kind": "int", "min": 1},
        )
        if self.n_scored is not None:
            if (
                isinstance(self.n_scored, bool)
                or not isinstance(self.n_scored, int)
                or self.n_scored < 3 * self.n_steer
            ):
                raise ValueError(
                    f"ReplicationConfig.n_scored must be None or an int >= 3 × n_steer ({3 * self.n_steer}), "
                    f"got {self.n_scored!r}"
                )
        if not isinstance(self.strengths, tuple) or not self.strengths:
            raise ValueError(f"ReplicationConfig.strengths must be a non-empty tuple, got {self.strengths!r}")
        for s in self.strengths:
            check_float("ReplicationConfig.strengths", s, min=0.0, min_open=True)

    @classmethod
    def small(cls) -> "ReplicationConfig":
        """A few-minute budget (tests, notebooks, ``workbench sae replicate --small``)."""
        return cls(n_rows=24, n_scored=96, n_steer=4, strengths=(4.0,), n_prompts=3, max_new_tokens=8)


def _quiet(*args, **kwargs) -> None:
    return None


# ----------------------------------------------------------------------------- scores for several SAEs


def score_saes(
    model,
    saes: Mapping[str, Any],
    cfg: ReplicationConfig = ReplicationConfig(),
    *,
    tokens: Optional[Tensor] = None,
    progress: bool = True,
    log: Callable = _quiet,
) -> dict[str, FeatureScores]:
    """Feature lens + output scores (on ``cfg.n_scored`` random features, or all) + top examples and
    input scores (one streaming pass over ``cfg.n_rows`` held-out sequences for all SAEs)."""
    toks = tokens if tokens is not None else heldout_tokens(model, cfg.n_rows)
    t0 = time.time()
    examples = cast(dict[str, TopExamples], collect_top_examples(model, dict(saes), toks, progress=progress))
    log(f"top examples over {toks.numel():,} tokens for {len(saes)} SAEs: {time.time() - t0:.0f} s")
    out = {}
    for name, sae in saes.items():
        t0 = time.time()
        d_sae = sae.cfg.d_sae
        if cfg.n_scored is None or cfg.n_scored >= d_sae:
            feats = torch.arange(d_sae)
            lens = feature_logit_lens(model, sae)
        else:
            g = torch.Generator().manual_seed(cfg.seed)
            feats = torch.randperm(d_sae, generator=g)[: cfg.n_scored].sort().values
            lens = feature_logit_lens(model, sae, features=feats)
        s_out = torch.full((d_sae,), float("nan"))
        s_out[feats] = output_scores(model, sae, lens, feats, batch_size=cfg.batch_size, progress=progress)
        table = score_table(model, sae, lens=lens, output=s_out, examples=examples[name])
        out[name] = FeatureScores(table, lens, examples[name])
        log(f"{name}: lens + {len(feats)} output scores in {time.time() - t0:.0f} s")
    return out


def cooccurrence(
    table: pd.DataFrame, *, input_threshold: float = 0.5, output_quantile: float = 0.9, min_examples: int = 10
) -> dict:
    """How often high input and high output scores co-occur, among features with both scores."""
    from scipy.stats import spearmanr

    check_probability("input_threshold", input_threshold)
    check_probability("output_quantile", output_quantile)
    t = table.dropna(subset=["input_score", "output_score"])
    t = t.loc[t["n_examples"] >= min_examples]
    if len(t) < 3:
        return {"n": len(t)}
    s_in, s_out = t["input_score"].to_numpy(dtype=float), t["output_score"].to_numpy(dtype=float)
    out_thr = float(np.quantile(s_out, output_quantile))  # pandas' quantile: the same linear interpolation
    hi_in = s_in >= input_threshold
    hi_out = s_out >= out_thr
    observed = float((hi_in & hi_out).mean())
    expected = float(hi_in.mean() * hi_out.mean())
    rho = spearmanr(s_in, s_out).statistic  # pyright: ignore[reportAttributeAccessIssue]
    return {
        "n": len(t),
        "input_threshold": input_threshold,
        "output_threshold": out_thr,
        "share_high_input": float(hi_in.mean()),
        "share_high_output": float(hi_out.mean()),
        "share_both_observed": observed,
        "share_both_if_independent": expected,
        "observed_over_independent": observed / expected if expected > 0 else float("nan"),
        "spearman_rho": float(rho),
    }


# ----------------------------------------------------------------------------- steering evaluation


def generated_nll(model, gen: Generation, *, batch_size: int = 16) -> Tensor:
    """Per row, the mean negative log-likelihood of the generated tokens under the *unsteered*
    model: ``Σ / count`` of :func:`workbench.likelihood.token_nll` over the new, unpadded columns
    (``exp`` of it is the perplexity)."""
    width = gen.tokens.shape[1] - gen.new_tokens.shape[1]
    target = torch.zeros_like(gen.attention_mask, dtype=torch.bool)
    target[:, width:] = gen.attention_mask[:, width:].bool()
    sums, counts = token_nll(model, gen.tokens, gen.attention_mask, target, batch_size=batch_size)
    return sums / counts.clamp_min(1)


def pick_groups(
    table: pd.DataFrame, n: int, *, min_examples: int = 10, filter_threshold: float = 0.01, seed: int = 0
) -> dict[str, list[int]]:
    """Four groups of ``n`` features, among scored features with at least ``min_examples`` top
    examples: the highest output scores; random features with ``S_out >= filter_threshold`` (the
    paper's filtering: drop low-output-score features, then pick); random features; the lowest
    output scores."""
    t = table.dropna(subset=["output_score"])
    t = t.loc[(t["n_examples"] >= min_examples) & (t["max_activation"] > 0)]
    if len(t) < 3 * n:
        raise ValueError(
            f"only {len(t)} scored features with >= {min_examples} examples; need {3 * n} for three groups of {n}"
        )
    kept = t.loc[t["output_score"] >= filter_threshold, "feature"].to_numpy()
    if len(kept) < n:
        raise ValueError(
            f"only {len(kept)} features have S_out >= {filter_threshold}; need {n} (lower filter_threshold)"
        )
    ranked = t.sort_values("output_score", ascending=False, kind="stable")["feature"].tolist()
    rng = np.random.default_rng(seed)
    return {
        HIGH: ranked[:n],
        FILTERED: sorted(int(i) for i in rng.choice(kept, size=n, replace=False)),
        RANDOM: sorted(int(i) for i in rng.choice(t["feature"].to_numpy(), size=n, replace=False)),
        LOW: ranked[-n:],
    }


def steering_experiment(
    model,
    sae,
    scores: FeatureScores,
    groups: Mapping[str, Sequence[int]],
    cfg: ReplicationConfig = ReplicationConfig(),
    *,
    layer_name: str = "",
    progress: bool = False,
) -> tuple[pd.DataFrame, list[dict]]:
    """Generate with every feature of every group at every strength; one row per (feature, strength,
    prompt) with ``success`` and ``nll``. Strength 0 (unsteered) rows give each feature's chance
    level. Returns the rows and a few example generations."""
    if scores.examples is None:
        raise ValueError("steering needs the features' max activations: score with top examples")
    prompts = list(PREFIXES[: cfg.n_prompts])
    feats = [(g, int(f)) for g, fs in groups.items() for f in fs]
    idx = torch.tensor([f for _, f in feats])
    lens_top = scores.lens.top_tokens
    max_act = scores.examples.max_activation
    site = sae_site(sae, model)
    rows, examples = [], []
    for s in (0.0, *cfg.strengths):
        reg = HookRegistry(model)
        if s == 0.0:
            gen = reg.generate(
                prompts, cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed, progress=progress
            )
            rep = len(feats)
            new = gen.new_tokens.repeat(rep, 1)
            mask = gen.attention_mask[:, -gen.new_tokens.shape[1] :].bool().repeat(rep, 1)
            nll = generated_nll(model, gen).repeat(rep)
            completions = gen.completions * rep
        else:
            per_row = idx.repeat_interleave(len(prompts))
            amount = s * max_act[per_row]
            reg.steer("feature", site, AddFeature(sae, per_row, amount), positions="last")
            gen = reg.generate(
                [p for _ in feats for p in prompts],
                cfg.max_new_tokens,
                temperature=cfg.temperature,
                seed=cfg.seed,
                progress=progress,
            )
            new = gen.new_tokens
            width = gen.tokens.shape[1] - new.shape[1]
            mask = gen.attention_mask[:, width:].bool()
            nll = generated_nll(model, gen)
            completions = gen.completions
        row_feats = idx.repeat_interleave(len(prompts))
        success = generation_success(new, mask, lens_top[row_feats])
        for r in range(len(row_feats)):
            g, f = feats[r // len(prompts)]
            rows.append(
                {
                    "layer": layer_name,
                    "group": g,
                    "feature": f,
                    "strength": s,
                    "prompt": prompts[r % len(prompts)],
                    "success": float(success[r]),
                    "nll": float(nll[r]),
                    "n_tokens": int(mask[r].sum()),
                }
            )
            if r % len(prompts) == 0 and s > 0:
                examples.append(
                    {
                        "layer": layer_name,
                        "group": g,
                        "feature": f,
                        "strength": s,
                        "prompt": prompts[0],
                        "completion": completions[r],
                    }
                )
    return pd.DataFrame(rows), examples


def _ratio(a: float, b: float) -> float:
    if b > 0:
        return a / b
    return float("inf") if a > 0 else float("nan")


def summarise_steering(rows: pd.DataFrame) -> pd.DataFrame:
    """Per layer × strength × group: mean generation success over features (± s.e.m.), mean *lift*
    (a feature's success minus its success on the unsteered generations, strength 0, which is not
    zero when ``T_i`` holds common tokens), median perplexity, and the ratios of mean success and
    of mean lift: filtered / random, high / random, high / low."""
    per_feature = rows.groupby(["layer", "strength", "group", "feature"], as_index=False).agg(
        success=("success", "mean"), nll=("nll", "mean")
    )
    base = per_feature.loc[per_feature["strength"] == 0, ["layer", "group", "feature", "success"]].rename(
        columns={"success": "base"}
    )
    per_feature = per_feature.merge(base, on=["layer", "group", "feature"], how="left")
    per_feature["lift"] = per_feature["success"] - per_feature["base"].fillna(0.0)
    agg = per_feature.groupby(["layer", "strength", "group"], as_index=False).agg(
        success=("success", "mean"),
        success_sem=("success", "sem"),
        lift=("lift", "mean"),
        lift_sem=("lift", "sem"),
        n_features=("feature", "count"),
        perplexity_median=("nll", lambda x: float(np.exp(np.median(x)))),
    )
    out = []
    for _, g in agg.groupby(["layer", "strength"]):
        succ = dict(zip(g["group"], g["success"]))
        lift = dict(zip(g["group"], g["lift"]))
        for _, r in g.iterrows():
            row = r.to_dict()
            for label, m in (("", succ), ("lift_", lift)):
                hi, filt, rnd, lo = (m.get(k, float("nan")) for k in GROUPS)
                row[f"{label}ratio_filtered_over_random"] = _ratio(filt, rnd)
                row[f"{label}ratio_high_over_random"] = _ratio(hi, rnd)
                row[f"{label}ratio_high_over_low"] = _ratio(hi, lo)
            out.append(row)
    return pd.DataFrame(out)


def pooled_steering(rows: pd.DataFrame) -> dict:
    """Over all layers and strengths > 0: mean success and mean lift per group (each feature ×
    strength counts once), and their ratios."""
    s = summarise_steering(rows)
    s = s.loc[s["strength"] > 0]
    out = {
        "success": s.groupby("group")["success"].mean().to_dict(),
        "lift": s.groupby("group")["lift"].mean().to_dict(),
    }
    nan = float("nan")
    for key in ("success", "lift"):
        m = out[key]
        out[f"{key}_ratio_filtered_over_random"] = _ratio(m.get(FILTERED, nan), m.get(RANDOM, nan))
        out[f"{key}_ratio_high_over_random"] = _ratio(m.get(HIGH, nan), m.get(RANDOM, nan))
        out[f"{key}_ratio_high_over_low"] = _ratio(m.get(HIGH, nan), m.get(LOW, nan))
    return out


def _add_steering_summary(summary: dict, rows: pd.DataFrame) -> pd.DataFrame:
    """Fill ``summary["steering"]``, ``["ratios"]`` (the high-score group's rows) and ``["pooled"]``
    from the raw steering ``rows``; return the per-layer summary table."""
    steer = summarise_steering(rows)
    ratio_cols = [c for c in steer.columns if "ratio" in c]
    summary["steering"] = steer.to_dict(orient="records")
    summary["ratios"] = steer.loc[steer["group"] == HIGH, ["layer", "strength", *ratio_cols]].to_dict(orient="records")
    summary["pooled"] = pooled_steering(rows)
    return steer


def _native(obj):
    """``obj`` with numpy scalars turned into Python numbers (for JSON)."""
    if isinstance(obj, dict):
        return {str(k): _native(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_native(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _save_summary(path: Path, summary: dict) -> None:
    body = {k: v for k, v in summary.items() if k not in ("kind", "schema_version")}
    save_json(path, _native(body), kind=SUMMARY_KIND, version=1, digits=None)


def _figures(scores_by_label: Mapping[str, pd.DataFrame], scores_by_layer, steer, min_examples: int):
    return {
        "sae_scores_scatter": score_scatter_figure(scores_by_label, min_examples=min_examples),
        "sae_scores_by_layer": layer_trend_figure(scores_by_layer, min_examples=min_examples),
        "sae_steering": steering_figure(steer, groups=GROUPS),
    }


# ----------------------------------------------------------------------------- the whole run


def run_replication(
    model,
    saes: Mapping[str, Any],
    cfg: ReplicationConfig = ReplicationConfig(),
    *,
    out_dir: Optional[Path] = None,
    figures_dir: Optional[Path] = None,
    scores_cache: Optional[Path] = None,
    save: bool = True,
    progress: bool = True,
    log: Callable = print,
) -> dict:
    """Scores, co-occurrence, layer trend and steering for ``saes`` (``{name: sae}``); writes CSV /
    JSON under ``out_dir`` (default ``results_dir() / "sae"``) and the figures
    ``sae_scores_scatter``, ``sae_scores_by_layer`` and ``sae_steering`` when ``save``; with
    ``scores_cache``, each SAE's scores and top examples too (:func:`workbench.sae.tables.save_scores`).
    Returns the summary dict (plus ``figures``, ``scores`` and ``tables``)."""
    from workbench.experiments.export import save_figure

    t_start = time.time()
    scored = score_saes(model, saes, cfg, progress=progress, log=log)
    layers = {name: sae_site(sae, model).layer for name, sae in saes.items()}
    label = {name: f"L{layers[name]}" for name in saes}
    summary: dict = {"config": asdict(cfg), "saes": {}, "timing_seconds": {}}
    summary["timing_seconds"]["scores"] = round(time.time() - t_start, 1)
    all_rows, all_examples = [], []
    t0 = time.time()
    for name, sae in saes.items():
        table = scored[name].table
        groups = pick_groups(
            table, cfg.n_steer, min_examples=cfg.min_examples, filter_threshold=cfg.filter_threshold, seed=cfg.seed
        )
        rows, examples = steering_experiment(
            model, sae, scored[name], groups, cfg, layer_name=label[name], progress=progress
        )
        all_rows.append(rows)
        all_examples += examples
        t = table.dropna(subset=["output_score"])
        alive = t[t["n_examples"] >= cfg.min_examples]
        summary["saes"][name] = {
            "layer": layers[name],
            "d_sae": sae.cfg.d_sae,
            "n_output_scored": len(t),
            "n_with_input_score": int(alive["input_score"].notna().sum()),
            "input_score_mean": float(alive["input_score"].mean()),
            "input_score_median": float(alive["input_score"].median()),
            "output_score_mean": float(alive["output_score"].mean()),
            "output_score_median": float(alive["output_score"].median()),
            "output_score_q90": float(alive["output_score"].quantile(0.9)),
            "cooccurrence": cooccurrence(
                table,
                input_threshold=cfg.input_threshold,
                output_quantile=cfg.output_quantile,
                min_examples=cfg.min_examples,
            ),
            "groups": {g: [int(f) for f in fs] for g, fs in groups.items()},
        }
        log(f"{name}: steering done ({time.time() - t0:.0f} s so far)")
    summary["timing_seconds"]["steering"] = round(time.time() - t0, 1)
    rows = pd.concat(all_rows, ignore_index=True)
    steer = _add_steering_summary(summary, rows)
    summary["timing_seconds"]["total"] = round(time.time() - t_start, 1)
    figs = _figures(
        {label[n]: scored[n].table for n in saes}, {layers[n]: scored[n].table for n in saes}, steer, cfg.min_examples
    )
    if save:
        out_dir = Path(out_dir) if out_dir is not None else results_dir() / "sae"
        for n in saes:
            save_score_table(scored[n].table, out_dir / f"scores_{n}.csv")
            if scores_cache is not None:
                save_scores(scored[n], Path(scores_cache) / n)  # reused by `workbench sae dashboard` / `steer`
        save_table(rows, out_dir / "steering_rows.csv")
        save_table(steer, out_dir / "steering_summary.csv")
        save_json(
            out_dir / "steering_examples.json", {"examples": all_examples}, kind="sae_steering_examples", version=1
        )
        _save_summary(out_dir / "replication.json", summary)
        for fname, fig in figs.items():
            save_figure(fig, fname, directory=figures_dir)
    summary["figures"] = figs
    summary["scores"] = scored
    summary["tables"] = {f"{label[n]} ({n})": scored[n].table for n in saes}
    return summary


def replot(
    out_dir: Optional[Path] = None,
    figures_dir: Optional[Path] = None,
    *,
    save: bool = True,
    formats: Sequence[str] = ("html", "png", "svg"),
) -> dict[str, go.Figure]:
    """Rebuild the three replication figures from the CSV / JSON that :func:`run_replication` wrote
    (default folder ``results_dir() / "sae"``); when ``steering_rows.csv`` is there, the steering
    summary, ratios and pooled numbers in ``replication.json`` / ``steering_summary.csv`` are
    recomputed from it first."""
    from workbench.artifacts import load_table
    from workbench.experiments.export import save_figure

    out_dir = Path(out_dir) if out_dir is not None else results_dir() / "sae"
    summary = read_json(out_dir / "replication.json")
    if "saes" not in summary or "config" not in summary:
        raise ValueError(f"{out_dir / 'replication.json'} lacks 'saes' or 'config'; it is not a replication summary")
    min_examples = summary["config"]["min_examples"]
    tables = {info["layer"]: load_score_table(out_dir / f"scores_{name}.csv") for name, info in summary["saes"].items()}
    rows_path = out_dir / "steering_rows.csv"
    if rows_path.exists():  # re-summarise from the raw rows, so summary and JSON follow the current definitions
        summary = {k: v for k, v in summary.items() if not k.startswith("pooled_")}
        steer = _add_steering_summary(summary, load_table(rows_path, required_columns=("layer", "group", "success")))
        if save:
            save_table(steer, out_dir / "steering_summary.csv")
            _save_summary(out_dir / "replication.json", summary)
    else:
        steer = load_table(out_dir / "steering_summary.csv", required_columns=("layer", "group", "strength"))
    figs = _figures({f"L{L}": tables[L] for L in sorted(tables)}, tables, steer, min_examples)
    if save:
        for fname, fig in figs.items():
            save_figure(fig, fname, directory=figures_dir, formats=formats)
    return figs


__all__ = [
    "FILTERED",
    "GROUPS",
    "HIGH",
    "LOW",
    "PREFIXES",
    "RANDOM",
    "ReplicationConfig",
    "cooccurrence",
    "generated_nll",
    "pick_groups",
    "pooled_steering",
    "replot",
    "run_replication",
    "score_saes",
    "steering_experiment",
    "summarise_steering",
]
