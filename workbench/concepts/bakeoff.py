"""The steering bake-off: every method on the same concept, layer, prompts, coefficient grid and metrics.

``fit_methods`` fits all six concept vectors at one site from the same training activations;
``run_bakeoff`` steers with each over the same grid (``steering_sweep``) and ``summarize`` reads off,
per method and direction, the best success reached while perplexity stays within ``max_ratio`` × the
unsteered perplexity. The winner has the widest controllable range: (best share toward positive) −
(best share toward negative) for two-sided concepts, the best share toward positive otherwise.
"""

import os
import time
from dataclasses import dataclass, field
from typing import Optional

import pandas as pd
import torch

from ..sites import Site
from .data import available_concepts, load_concept
from .evaluate import NEUTRAL_PROMPTS, steering_sweep
from .extract import extract
from .vectors import METHODS, ConceptVector, fit_vector

GRID = (4.0, 8.0, 12.0)


@dataclass(frozen=True)
class BakeoffConfig:
    """Everything that must be the same for every method. ``grid`` is in units of ‖μ⁺ − μ⁻‖: the push
    length for additive methods, the added ``±strength·r`` for ablation/ACE, and for GCAV the distance
    past the probe's boundary that each token is moved to (``steering_edit``)."""

    concept: str = "sentiment"
    layer: int = 8
    stream: str = "resid_post"
    methods: tuple[str, ...] = METHODS
    grid: tuple[float, ...] = GRID
    toward: tuple[str, ...] = ("positive", "negative")
    n_train: int = 200
    n_pool: int = 100
    n_prompts: int = 20
    max_new_tokens: int = 24
    reduce: str = "mean"
    positions: str = "all"
    C: float = 1.0
    seed: int = 0
    max_ratio: float = 2.0

    def __post_init__(self) -> None:
        unknown = set(self.methods) - set(METHODS)
        if unknown or not self.methods:
            raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
        if not self.grid or min(self.grid) <= 0:
            raise ValueError(f"grid must hold positive strengths, got {self.grid}")
        if not self.toward or set(self.toward) - {"positive", "negative"}:
            raise ValueError(f"toward must be a non-empty subset of ('positive', 'negative'), got {self.toward}")
        for k in ("n_train", "n_pool", "n_prompts", "max_new_tokens"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)}")
        if self.n_prompts > len(NEUTRAL_PROMPTS):
            raise ValueError(f"n_prompts={self.n_prompts} but only {len(NEUTRAL_PROMPTS)} neutral prompts exist")
        if self.reduce not in ("mean", "last"):
            raise ValueError(f"reduce must be 'mean' or 'last', got {self.reduce!r}")

    @property
    def site(self) -> Site:
        return Site(self.layer, self.stream)

    @classmethod
    def for_budget(cls, budget: Optional[str] = None, **overrides) -> "BakeoffConfig":
        """``budget="small"`` (or ``WORKBENCH_BUDGET=small``): a tiny run for tests and notebooks."""
        budget = budget or os.environ.get("WORKBENCH_BUDGET", "full")
        if budget not in ("small", "full"):
            raise ValueError(f"budget must be 'small' or 'full', got {budget!r}")
        if budget == "small":
            small = dict(n_train=40, n_pool=20, n_prompts=4, max_new_tokens=8, grid=(8.0,))
            small.update(overrides)
            return cls(**small)
        return cls(**overrides)


def pool_activations(model, site: Site, n_per_side: int, reduce: str, *, progress: bool = False) -> torch.Tensor:
    """Activations of the training texts of every shipped concept (``n_per_side`` per side each): the
    "all training activations" that mean-centring subtracts (Jorgensen et al. 2023)."""
    texts = []
    for name in available_concepts():
        tr = load_concept(name).train.head(n_per_side)
        texts += tr.texts
    return extract(model, texts, site, reduce, progress=progress)[site.short]


def fit_methods(model, config: BakeoffConfig, *, progress: bool = False) -> dict[str, ConceptVector]:
    """All configured methods' vectors for ``config.concept`` at ``config.site`` from the same activations."""
    data = load_concept(config.concept).train.head(config.n_train)
    acts = extract(model, data.texts, config.site, config.reduce, progress=progress)[config.site.short]
    n = len(data.positive)
    pos, neg = acts[:n], acts[n:]
    pool = (
        pool_activations(model, config.site, config.n_pool, config.reduce, progress=progress)
        if "mean_centring" in config.methods
        else None
    )
    common = dict(reduce=config.reduce, n_train=config.n_train, layer=config.layer)
    return {
        m: fit_vector(
            m, config.site, pos, neg, all_training=pool, C=config.C, concept=config.concept, extra_params=common
        )
        for m in config.methods
    }


@dataclass
class BakeoffResult:
    config: BakeoffConfig
    table: pd.DataFrame
    completions: pd.DataFrame
    summary: pd.DataFrame
    winner: str
    seconds: float
    vectors: dict[str, ConceptVector] = field(default_factory=dict)
    figures: dict = field(default_factory=dict)


def summarize(table: pd.DataFrame, *, max_ratio: float = 2.0) -> tuple[pd.DataFrame, str]:
    """Per method: best positive-direction success and best (lowest) negative-direction success among
    strengths with perplexity ratio ≤ ``max_ratio``; the range between them; and the winner."""
    base = table[table["method"] == "none"].iloc[0]
    rows = []
    for method, sub in table[table["method"] != "none"].groupby("method", sort=False):
        row = {"method": method, "unsteered_success": float(base["success"])}
        for toward in ("positive", "negative"):
            part = sub[(sub["toward"] == toward)]
            if part.empty:
                continue
            ok = part[part["perplexity_ratio"] <= max_ratio]
            if ok.empty:
                row.update(
                    {
                        f"{toward}_success": float("nan"),
                        f"{toward}_strength": float("nan"),
                        f"{toward}_ppl_ratio": float("nan"),
                        f"{toward}_kl": float("nan"),
                    }
                )
            else:
                best = ok.loc[ok["success"].idxmax() if toward == "positive" else ok["success"].idxmin()]
                row.update(
                    {
                        f"{toward}_success": float(best["success"]),
                        f"{toward}_strength": float(best["strength"]),
                        f"{toward}_ppl_ratio": float(best["perplexity_ratio"]),
                        f"{toward}_kl": float(best["kl"]),
                    }
                )
            # closest approach irrespective of fluency, to report how near each method comes
            extreme = part.loc[part["success"].idxmax() if toward == "positive" else part["success"].idxmin()]
            row[f"{toward}_success_any_ppl"] = float(extreme["success"])
            row[f"{toward}_ppl_ratio_at_that"] = float(extreme["perplexity_ratio"])
        pos = row.get("positive_success", float("nan"))
        neg = row.get("negative_success", float("nan"))
        pos = row["unsteered_success"] if pd.isna(pos) and "positive_success" in row else pos
        neg = row["unsteered_success"] if pd.isna(neg) and "negative_success" in row else neg
        row["controllable_range"] = (pos - neg) if "negative_success" in row else (pos - row["unsteered_success"])
        rows.append(row)
    summary = (
        pd.DataFrame(rows).sort_values("controllable_range", ascending=False, kind="stable").reset_index(drop=True)
    )
    return summary, str(summary.iloc[0]["method"])


def run_bakeoff(model, config: BakeoffConfig, *, progress: bool = True) -> BakeoffResult:
    """Fit every method, run the same grid on the same prompts, summarise, and build the figures."""
    from .plots import frontier_figure

    start = time.perf_counter()
    vectors = fit_methods(model, config, progress=progress)
    sweep = steering_sweep(
        model,
        list(vectors.values()),
        config.grid,
        concept=config.concept,
        toward=config.toward,
        prompts=NEUTRAL_PROMPTS[: config.n_prompts],
        max_new_tokens=config.max_new_tokens,
        positions=config.positions,
        seed=config.seed,
        progress=progress,
    )
    summary, winner = summarize(sweep.table, max_ratio=config.max_ratio)
    seconds = time.perf_counter() - start
    figs = dict(sweep.figures)
    figs["frontier"] = frontier_figure(
        sweep.table,
        title=f"Bake-off: {config.concept} at {config.site.short} "
        f"({config.n_prompts} prompts, {config.max_new_tokens} tokens)",
        max_ratio=config.max_ratio,
    )
    return BakeoffResult(config, sweep.table, sweep.completions, summary, winner, seconds, vectors, figs)


def save_bakeoff(result: BakeoffResult, directory="figures", *, static: bool = True) -> dict[str, str]:
    """Write the tables (CSV), the summary (JSON) and the figures under ``directory``."""
    import json
    from pathlib import Path

    from ..experiments.export import save_figure

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    stem = f"concepts_bakeoff_{result.config.concept}"
    out = {}
    result.table.to_csv(d / f"{stem}.csv", index=False)
    result.completions.to_csv(d / f"{stem}_completions.csv", index=False)
    (d / f"{stem}_summary.json").write_text(
        json.dumps(
            {
                "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in result.config.__dict__.items()},
                "winner": result.winner,
                "seconds": result.seconds,
                "summary": result.summary.to_dict(orient="records"),
            },
            indent=2,
            default=float,
        )
    )
    out["table"] = str(d / f"{stem}.csv")
    for name, fig in result.figures.items():
        save_figure(fig, f"{stem}_{name}", directory=d, formats=("html", "png", "svg") if static else ("html",))
        out[name] = str(d / f"{stem}_{name}.html")
    return out
