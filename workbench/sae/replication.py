"""Replicating Arad, Mueller & Belinkov (2025) on our SAEs: input vs output scores and steering.

1. **Scores** per SAE: logit lens, output scores (batched, :func:`~workbench.sae.scores.output_scores`)
   and input scores from the top examples over held-out text (one streaming pass for all SAEs).
2. **Co-occurrence** of high input and high output scores: the observed share of features with both
   ``S_in ≥ τ_in`` and ``S_out`` in the top decile of its layer, against the share expected if the
   two were independent (the product of the marginals), plus Spearman's ρ.
3. **Layer trend** of both scores.
4. **Steering** with four groups of features per layer — the highest output scores; random
   features among those with ``S_out ≥ 0.01`` (the paper's filtering: drop low-output-score
   features); random features; the lowest output scores (all among features with ≥ 10 examples, so
   their max activation is known) — by adding ``s × max activation`` of the feature on the last prompt token and
   every generated token (:func:`~workbench.sae.steering.steer_feature`), for a few strengths ``s``.
   *Generation success* is the share of generated tokens in the feature's top-20 logit-lens tokens
   ``T_i``; *fluency* is the perplexity of the generated tokens under the unsteered model. The paper
   reports 2–3× better steering after filtering by output score; :func:`summarise_steering` gives
   our ratios (filtered / random, high / random, high / low) at each strength.

Every generation row steers a different feature (per-row :class:`~workbench.sae.steering.AddFeature`),
so one ``reg.generate`` call covers a whole layer × strength.
"""

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from jaxtyping import Bool, Int
from plotly.subplots import make_subplots
from torch import Tensor

from ..plots.style import PALETTE, style
from ..registry import HookRegistry
from .loading import sae_site
from .scores import (
    FeatureScores,
    _table_for_csv,
    collect_top_examples,
    feature_logit_lens,
    heldout_tokens,
    output_scores,
    save_scores,
    score_table,
)
from .steering import AddFeature

# Neutral openings for steered generation (our own list, in the spirit of the paper's prefixes).
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


@dataclass(frozen=True)
class ReplicationConfig:
    """Budget of a replication run (the defaults fit ~20 minutes of a free 2-core CPU)."""

    n_rows: int = 256  # held-out sequences (128 tokens) for the top examples
    n_scored: Optional[int] = None  # output-score this many random features per SAE (None = all)
    n_steer: int = 12  # features per group and layer
    strengths: tuple[float, ...] = (2.0, 4.0, 8.0)
    n_prompts: int = 8
    max_new_tokens: int = 16
    temperature: float = 0.7
    min_examples: int = 10
    input_threshold: float = 0.5
    output_quantile: float = 0.9
    filter_threshold: float = 0.01  # "filtered random": random features with S_out >= this
    seed: int = 0
    batch_size: int = 128

    def __post_init__(self) -> None:
        for name in ("n_rows", "n_steer", "n_prompts", "max_new_tokens", "min_examples", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.n_scored is not None and (not isinstance(self.n_scored, int) or self.n_scored < 3 * self.n_steer):
            raise ValueError(
                f"n_scored must be None or an int >= 3 × n_steer ({3 * self.n_steer}), got {self.n_scored!r}"
            )
        if not self.strengths or any((not isinstance(s, (int, float))) or s <= 0 for s in self.strengths):
            raise ValueError(f"strengths must be positive numbers, got {self.strengths!r}")
        if self.n_prompts > len(PREFIXES):
            raise ValueError(f"n_prompts must be <= {len(PREFIXES)} (the number of prefixes), got {self.n_prompts}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.input_threshold <= 1 or not 0 < self.output_quantile < 1:
            raise ValueError("input_threshold must be in (0, 1] and output_quantile in (0, 1)")

    @classmethod
    def small(cls) -> "ReplicationConfig":
        """A few-minute budget (``WORKBENCH_BUDGET=small``)."""
        return cls(n_rows=24, n_scored=96, n_steer=4, strengths=(4.0,), n_prompts=3, max_new_tokens=8)


# ----------------------------------------------------------------------------- scores for several SAEs


def score_saes(
    model,
    saes: Mapping[str, object],
    cfg: ReplicationConfig = ReplicationConfig(),
    *,
    tokens: Optional[Tensor] = None,
    progress: bool = True,
    log=print,
) -> dict[str, FeatureScores]:
    """Logit lens + output scores (on ``cfg.n_scored`` random features, or all) + top examples and
    input scores (one streaming pass over ``cfg.n_rows`` held-out sequences for all SAEs)."""
    toks = tokens if tokens is not None else heldout_tokens(model, cfg.n_rows)
    t0 = time.time()
    examples = collect_top_examples(model, dict(saes), toks, progress=progress)
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

    t = table.dropna(subset=["input_score", "output_score"])
    t = t[t["n_examples"] >= min_examples]
    if len(t) < 3:
        return {"n": len(t)}
    out_thr = float(t["output_score"].quantile(output_quantile))
    hi_in = t["input_score"] >= input_threshold
    hi_out = t["output_score"] >= out_thr
    observed = float((hi_in & hi_out).mean())
    expected = float(hi_in.mean() * hi_out.mean())
    rho = spearmanr(t["input_score"], t["output_score"]).statistic
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


def generation_success(
    new_tokens: Int[Tensor, "batch new"], mask: Bool[Tensor, "batch new"], top_tokens: Int[Tensor, "batch k"]
) -> Tensor:
    """Per row, the share of generated tokens (where ``mask``) that lie in that row's ``T_i``."""
    hit = (new_tokens[:, :, None] == top_tokens[:, None, :]).any(-1) & mask
    return hit.sum(1).float() / mask.sum(1).clamp_min(1).float()


def continuation_nll(
    model, tokens: Tensor, attention_mask: Tensor, prompt_width: int, new_mask: Tensor, *, batch_size: int = 16
) -> Tensor:
    """Mean negative log-likelihood per row of the generated tokens (columns ``>= prompt_width``,
    where ``new_mask``) under the *unsteered* model; ``exp`` of it is the perplexity."""
    reg = HookRegistry(model)
    out = []
    with torch.no_grad():
        for s in range(0, tokens.shape[0], batch_size):
            t, m = tokens[s : s + batch_size], attention_mask[s : s + batch_size]
            logits = reg.run(t, attention_mask=m, need_logits=True)
            logp = logits[:, prompt_width - 1 : -1].float().log_softmax(-1)
            tgt = t[:, prompt_width:].to(logp.device)
            nll = -logp.gather(-1, tgt[..., None])[..., 0]
            mk = new_mask[s : s + batch_size].to(nll.device).float()
            out.append(((nll * mk).sum(1) / mk.sum(1).clamp_min(1)).cpu())
    return torch.cat(out)


def pick_groups(
    table: pd.DataFrame, n: int, *, min_examples: int = 10, filter_threshold: float = 0.01, seed: int = 0
) -> dict[str, list[int]]:
    """Four groups of ``n`` features, among scored features with at least ``min_examples`` top
    examples: the highest output scores; random features with ``S_out >= filter_threshold`` (the
    paper's filtering: drop low-output-score features, then pick); random features; the lowest
    output scores."""
    t = table.dropna(subset=["output_score"])
    t = t[(t["n_examples"] >= min_examples) & (t["max_activation"] > 0)]
    if len(t) < 3 * n:
        raise ValueError(
            f"only {len(t)} scored features with >= {min_examples} examples; need {3 * n} for three groups of {n}"
        )
    kept = t[t["output_score"] >= filter_threshold]["feature"].to_numpy()
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
            nll = continuation_nll(
                model,
                gen.tokens,
                gen.attention_mask,
                gen.tokens.shape[1] - gen.new_tokens.shape[1],
                gen.attention_mask[:, -gen.new_tokens.shape[1] :],
            ).repeat(rep)
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
            nll = continuation_nll(model, gen.tokens, gen.attention_mask, width, gen.attention_mask[:, width:])
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


def summarise_steering(rows: pd.DataFrame) -> pd.DataFrame:
    """Per layer × strength × group: mean generation success over features (± s.e.m.), mean *lift*
    (a feature's success minus its success on the unsteered generations, strength 0, which is not
    zero when ``T_i`` holds common tokens), median perplexity, and the ratios of mean success and
    of mean lift: filtered / random, high / random, high / low."""
    per_feature = rows.groupby(["layer", "strength", "group", "feature"], as_index=False).agg(
        success=("success", "mean"), nll=("nll", "mean")
    )
    base = per_feature[per_feature["strength"] == 0][["layer", "group", "feature", "success"]].rename(
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
    for (layer, s), g in agg.groupby(["layer", "strength"]):
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
    """Over all layers and strengths > 0: mean success and mean lift per group (each feature × strength
    counts once), and their ratios."""
    s = summarise_steering(rows)
    s = s[s["strength"] > 0]
    out = {
        "success": s.groupby("group")["success"].mean().to_dict(),
        "lift": s.groupby("group")["lift"].mean().to_dict(),
    }
    for key in ("success", "lift"):
        m = out[key]
        out[f"{key}_ratio_filtered_over_random"] = _ratio(m.get(FILTERED, float("nan")), m.get(RANDOM, float("nan")))
        out[f"{key}_ratio_high_over_random"] = _ratio(m.get(HIGH, float("nan")), m.get(RANDOM, float("nan")))
        out[f"{key}_ratio_high_over_low"] = _ratio(m.get(HIGH, float("nan")), m.get(LOW, float("nan")))
    return out


def _add_steering_summary(summary: dict, rows: pd.DataFrame) -> pd.DataFrame:
    """Fill ``summary["steering"]``, ``["ratios"]`` (the high-score group's rows) and ``["pooled"]``
    from the raw steering ``rows``; return the per-layer summary table."""
    steer = summarise_steering(rows)
    ratio_cols = [c for c in steer.columns if "ratio" in c]
    summary["steering"] = steer.to_dict(orient="records")
    summary["ratios"] = steer[steer["group"] == HIGH][["layer", "strength", *ratio_cols]].to_dict(orient="records")
    summary["pooled"] = pooled_steering(rows)
    return steer


def _ratio(a: float, b: float) -> float:
    if b > 0:
        return a / b
    return float("inf") if a > 0 else float("nan")


# ----------------------------------------------------------------------------- figures


def score_scatter_figure(
    tables: Mapping[str, pd.DataFrame],
    *,
    min_examples: int = 10,
    title: str = "Input score vs output score per feature",
) -> go.Figure:
    """One panel per SAE: each dot a feature (with ≥ ``min_examples`` top examples)."""
    names = list(tables)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, shared_yaxes=True, horizontal_spacing=0.04)
    for c, name in enumerate(names, start=1):
        t = tables[name].dropna(subset=["input_score", "output_score"])
        t = t[t["n_examples"] >= min_examples]
        hover = [
            f"feature {f}<br>S_in {a:.2f}, S_out {b:.3f}<br>{' '.join(map(repr, toks[:5]))}"
            for f, a, b, toks in zip(t["feature"], t["input_score"], t["output_score"], t["top_tokens"])
        ]
        fig.add_trace(
            go.Scattergl(
                x=t["input_score"],
                y=t["output_score"],
                mode="markers",
                name=name,
                showlegend=False,
                marker=dict(size=4, opacity=0.45, color=PALETTE[(c - 1) % len(PALETTE)]),
                hovertext=hover,
                hoverinfo="text",
            ),
            row=1,
            col=c,
        )
        fig.update_xaxes(title_text="input score S_in (share)", range=[-0.03, 1.03], row=1, col=c)
    fig.update_yaxes(title_text="output score S_out", row=1, col=1)
    return style(fig, title=title, width=max(420, 330 * len(names)), height=420)


def layer_trend_figure(
    tables: Mapping[int, pd.DataFrame], *, min_examples: int = 10, title: str = "Input and output scores by layer"
) -> go.Figure:
    """Two panels against the SAE's layer: mean (± s.e.m.) input score and mean output score, over
    features with ≥ ``min_examples`` top examples (y axes start at 0)."""
    layers = sorted(tables)
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("input score S_in", "output score S_out"), horizontal_spacing=0.14
    )
    for col, (key, colour) in enumerate((("input_score", PALETTE[0]), ("output_score", PALETTE[3])), start=1):
        means, sems, ns = [], [], []
        for L in layers:
            t = tables[L]
            v = t[t["n_examples"] >= min_examples][key].dropna()
            means.append(float(v.mean()) if len(v) else float("nan"))
            sems.append(float(v.sem()) if len(v) > 1 else 0.0)
            ns.append(len(v))
        fig.add_trace(
            go.Scatter(
                x=layers,
                y=means,
                error_y=dict(type="data", array=sems),
                mode="lines+markers",
                name=f"mean {key.replace('_', ' ')}",
                line=dict(color=colour),
                showlegend=False,
                customdata=ns,
                hovertemplate="layer %{x}: mean %{y:.4f} over %{customdata} features<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text="layer (resid_post)", tickvals=layers, row=1, col=col)
        fig.update_yaxes(title_text=f"mean {key.replace('_', ' ')} (± s.e.m.)", rangemode="tozero", row=1, col=col)
    return style(fig, title=title, width=820, height=420)


def steering_figure(
    summary: pd.DataFrame, *, title: str = "Steering with SAE features: success and fluency"
) -> go.Figure:
    """Top row: generation success vs strength per group, one panel per layer (strength 0 = the
    unsteered chance level). Bottom row: median perplexity of the generations (log scale)."""
    layers = sorted(dict.fromkeys(summary["layer"]), key=_layer_key)
    fig = make_subplots(
        rows=2,
        cols=len(layers),
        subplot_titles=layers,
        shared_xaxes=True,
        vertical_spacing=0.1,
        horizontal_spacing=0.05,
    )
    for c, layer in enumerate(layers, start=1):
        for gi, group in enumerate(GROUPS):
            g = summary[(summary["layer"] == layer) & (summary["group"] == group)].sort_values("strength")
            if g.empty:
                continue
            colour = PALETTE[[3, 1, 7, 0][gi]]
            fig.add_trace(
                go.Scatter(
                    x=g["strength"],
                    y=g["success"],
                    error_y=dict(type="data", array=g["success_sem"].fillna(0)),
                    mode="lines+markers",
                    name=group,
                    legendgroup=group,
                    showlegend=c == 1,
                    line=dict(color=colour),
                ),
                row=1,
                col=c,
            )
            fig.add_trace(
                go.Scatter(
                    x=g["strength"],
                    y=g["perplexity_median"],
                    mode="lines+markers",
                    name=group,
                    legendgroup=group,
                    showlegend=False,
                    line=dict(color=colour, dash="dot"),
                ),
                row=2,
                col=c,
            )
        fig.update_xaxes(title_text="strength s (× max activation)", row=2, col=c)
        fig.update_yaxes(type="log", row=2, col=c)
    fig.update_yaxes(range=[-0.03, 1.03], row=1)  # one scale for every layer: success is a share
    fig.update_yaxes(title_text="success (share in T_i)", row=1, col=1)
    fig.update_yaxes(title_text="perplexity", row=2, col=1)
    return style(fig, title=title, width=max(500, 360 * len(layers)), height=640)


def _layer_key(label: str):
    digits = "".join(ch for ch in str(label) if ch.isdigit())
    return (int(digits) if digits else 10**9, str(label))


# ----------------------------------------------------------------------------- the whole run


def run_replication(
    model,
    saes: Mapping[str, object],
    cfg: ReplicationConfig = ReplicationConfig(),
    *,
    out_dir: Optional[Path] = Path("results/sae"),
    figures_dir: Optional[Path] = None,
    scores_cache: Optional[Path] = None,
    save: bool = True,
    progress: bool = True,
    log=print,
) -> dict:
    """Scores, co-occurrence, layer trend and steering for ``saes`` (``{name: sae}``); writes CSV /
    JSON under ``out_dir`` and figures ``sae_scores_scatter``, ``sae_scores_by_layer`` and
    ``sae_steering`` when ``save``; with ``scores_cache``, each SAE's scores and top examples too
    (:func:`~workbench.sae.scores.save_scores`). Returns the summary dict (plus ``figures`` and ``scores``)."""
    from ..experiments.export import save_figure

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
    tables_by_label = {f"{label[n]} ({n})": scored[n].table for n in saes}
    figs = {
        "sae_scores_scatter": score_scatter_figure(
            {label[n]: scored[n].table for n in saes}, min_examples=cfg.min_examples
        ),
        "sae_scores_by_layer": layer_trend_figure(
            {layers[n]: scored[n].table for n in saes}, min_examples=cfg.min_examples
        ),
        "sae_steering": steering_figure(steer),
    }
    if save:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for n in saes:
            _table_for_csv(scored[n].table).to_csv(out_dir / f"scores_{n}.csv", index=False)
            if scores_cache is not None:
                save_scores(scored[n], Path(scores_cache) / n)  # reused by `workbench sae dashboard` / `steer`
        rows.to_csv(out_dir / "steering_rows.csv", index=False)
        steer.to_csv(out_dir / "steering_summary.csv", index=False)
        (out_dir / "steering_examples.json").write_text(json.dumps(all_examples, indent=1, ensure_ascii=False))
        (out_dir / "replication.json").write_text(json.dumps(summary, indent=2, default=float))
        for fname, fig in figs.items():
            save_figure(fig, fname, directory=figures_dir)
    summary["figures"] = figs
    summary["scores"] = scored
    summary["tables"] = tables_by_label
    return summary


def replot(
    out_dir: Path = Path("results/sae"),
    figures_dir: Optional[Path] = None,
    *,
    save: bool = True,
    formats: Sequence[str] = ("html", "png", "svg"),
) -> dict[str, go.Figure]:
    """Rebuild the three replication figures from the CSV / JSON that :func:`run_replication` wrote;
    when ``steering_rows.csv`` is there, the steering summary, ratios and pooled numbers in
    ``replication.json`` / ``steering_summary.csv`` are recomputed from it first."""
    from ..experiments.export import save_figure

    out_dir = Path(out_dir)
    summary = json.loads((out_dir / "replication.json").read_text())
    min_examples = summary["config"]["min_examples"]
    tables = {}
    for name, info in summary["saes"].items():
        t = pd.read_csv(out_dir / f"scores_{name}.csv")
        t["top_tokens"] = [str(x).split(" | ") if isinstance(x, str) else [] for x in t["top_tokens"]]
        tables[info["layer"]] = t
    layers = sorted(tables)
    rows_path = out_dir / "steering_rows.csv"
    if rows_path.exists():  # re-summarise from the raw rows, so summary and JSON follow the current definitions
        summary = {k: v for k, v in summary.items() if not k.startswith("pooled_")}
        steer = _add_steering_summary(summary, pd.read_csv(rows_path))
        if save:
            steer.to_csv(out_dir / "steering_summary.csv", index=False)
            (out_dir / "replication.json").write_text(json.dumps(summary, indent=2, default=float))
    else:
        steer = pd.read_csv(out_dir / "steering_summary.csv")
    figs = {
        "sae_scores_scatter": score_scatter_figure({f"L{L}": tables[L] for L in layers}, min_examples=min_examples),
        "sae_scores_by_layer": layer_trend_figure(tables, min_examples=min_examples),
        "sae_steering": steering_figure(steer),
    }
    if save:
        for fname, fig in figs.items():
            save_figure(fig, fname, directory=figures_dir, formats=formats)
    return figs
