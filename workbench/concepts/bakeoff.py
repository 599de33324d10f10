"""The steering bake-off: every method on the same concept, layer, prompts, coefficient grid and metrics.

``fit_methods`` fits all six concept vectors at one site from the same training activations;
``run_bakeoff`` steers with each over the same grid (``steering_sweep``) and ``summarize`` reads off,
per method and direction, the best success reached while perplexity stays within ``max_ratio`` × the
unsteered perplexity. The winner has the widest controllable range: (best share toward positive) −
(best share toward negative) for two-sided concepts, the best share toward positive otherwise.
"""

import math
import time
from dataclasses import dataclass, field

import pandas as pd
import torch

from ..positions import Positions
from ..prompts import neutral_prompts
from ..sites import Site
from ..validation import check_choice, check_fields, check_str
from .data import available_concepts, load_concept
from .evaluate import steering_sweep
from .extract import extract
from .method import TOWARD, method_class, method_names
from .methods import METHODS
from .vectors import ConceptVector, fit_vector

GRID = (4.0, 8.0, 12.0)
# Named budgets: the overrides each applies to the defaults ("small": a tiny run for tests and notebooks).
BUDGETS: dict[str, dict] = {
    "small": dict(n_train=40, n_pool=20, n_prompts=4, max_new_tokens=8, grid=(8.0,)),
    "full": {},
}


@dataclass(frozen=True)
class BakeoffConfig:
    """Everything that must be the same for every method. ``grid`` is in units of ‖μ⁺ − μ⁻‖: the push
    length for additive methods, the added ``±strength·r`` for ablation/ACE, and for GCAV the distance
    past the probe's boundary that each token is moved to (``steering_edit``). Budgets are explicit:
    ``BakeoffConfig.small()`` or ``BakeoffConfig.for_budget("small", ...)``; nothing is read from the
    environment."""

    concept: str = "sentiment"  # a shipped concept (load_concept), judged by judges.judge_for(concept)
    layer: int = 8  # every method is fitted and steers at this one layer ...
    stream: str = "resid_post"  # ... and stream
    methods: tuple[str, ...] = METHODS  # registered method names, compared in this order
    grid: tuple[float, ...] = GRID  # strengths, in units of ‖μ⁺ − μ⁻‖
    toward: tuple[str, ...] = TOWARD  # directions to steer
    n_train: int = 200  # training pairs per side for fitting
    n_pool: int = 100  # texts per side of every concept for mean-centring's "all training" mean
    n_prompts: int = 20  # neutral prompts completed per condition
    max_new_tokens: int = 24  # tokens per completion
    reduce: str = "mean"  # how a text's tokens become one activation: "mean" (after the first) or "last"
    positions: str = "all"  # positions the edit acts on (workbench.positions)
    C: float = 1.0  # the logistic probe's inverse L2 strength
    seed: int = 0  # generation seed (greedy decoding ignores it)
    max_ratio: float = 2.0  # fluency limit: a strength counts only while perplexity ≤ max_ratio × unsteered

    def __post_init__(self) -> None:
        for name in ("methods", "grid", "toward"):
            value = getattr(self, name)
            if isinstance(value, str) or not hasattr(value, "__iter__"):
                raise TypeError(f"BakeoffConfig.{name} must be a tuple, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        check_str("BakeoffConfig.concept", self.concept)
        check_str("BakeoffConfig.stream", self.stream)
        check_fields(
            self,
            layer=dict(kind="int", min=0),
            n_train=dict(kind="int", min=1),
            n_pool=dict(kind="int", min=1),
            n_prompts=dict(kind="int", min=1, max=len(neutral_prompts())),
            max_new_tokens=dict(kind="int", min=1),
            C=dict(kind="float", min=0.0, min_open=True),
            seed=dict(kind="int", min=0),
            max_ratio=dict(kind="float", min=1.0),
        )
        unknown = [m for m in self.methods if m not in method_names()]
        if unknown or not self.methods:
            raise ValueError(f"unknown methods {unknown} (or none given); choose from {method_names()}")
        if not self.grid or any(
            isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g <= 0 for g in self.grid
        ):
            raise ValueError(f"grid must hold positive strengths, got {self.grid}")
        if not self.toward or set(self.toward) - set(TOWARD):
            raise ValueError(f"toward must be a non-empty subset of {TOWARD}, got {self.toward}")
        check_choice("BakeoffConfig.reduce", self.reduce, ("mean", "last"))
        Positions.parse(self.positions)

    @property
    def site(self) -> Site:
        return Site(self.layer, self.stream)

    @classmethod
    def for_budget(cls, budget: str = "full", **overrides) -> "BakeoffConfig":
        """The config of a named budget (``BUDGETS``: ``"small"`` is a tiny run for tests and
        notebooks, ``"full"`` the defaults), with ``overrides`` on top."""
        check_choice("budget", budget, tuple(BUDGETS))
        return cls(**{**BUDGETS[budget], **overrides})

    @classmethod
    def small(cls, **overrides) -> "BakeoffConfig":
        """``for_budget("small", **overrides)``."""
        return cls.for_budget("small", **overrides)


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
    needs_pool = any(method_class(m).needs_all_training for m in config.methods)
    pool = pool_activations(model, config.site, config.n_pool, config.reduce, progress=progress) if needs_pool else None
    common = dict(reduce=config.reduce, n_train=config.n_train, layer=config.layer)
    return {
        m: fit_vector(
            m, config.site, pos, neg, all_training=pool, C=config.C, concept=config.concept, extra_params=common
        )
        for m in config.methods
    }


@dataclass
class BakeoffResult:
    """``table``: one row per condition (``steering_sweep``); ``completions``: one row per generated
    text; ``summary``: one row per method (``summarize``); the ``winner``; wall time; the vectors.
    Figures: ``workbench.plots.concepts.bakeoff_figures``; files: ``workbench.experiments.bakeoff``."""

    config: BakeoffConfig
    table: pd.DataFrame
    completions: pd.DataFrame
    summary: pd.DataFrame
    winner: str
    seconds: float
    vectors: dict[str, ConceptVector] = field(default_factory=dict)


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
    """Fit every method, run the same grid on the same prompts, and summarise."""
    if not isinstance(config, BakeoffConfig):
        raise TypeError(f"config must be a BakeoffConfig, got {type(config).__name__}")
    start = time.perf_counter()
    vectors = fit_methods(model, config, progress=progress)
    sweep = steering_sweep(
        model,
        list(vectors.values()),
        config.grid,
        concept=config.concept,
        toward=config.toward,
        prompts=neutral_prompts(config.n_prompts),
        max_new_tokens=config.max_new_tokens,
        positions=config.positions,
        seed=config.seed,
        progress=progress,
    )
    summary, winner = summarize(sweep.table, max_ratio=config.max_ratio)
    seconds = time.perf_counter() - start
    return BakeoffResult(config, sweep.table, sweep.completions, summary, winner, seconds, vectors)


__all__ = [
    "BUDGETS",
    "GRID",
    "BakeoffConfig",
    "BakeoffResult",
    "fit_methods",
    "pool_activations",
    "run_bakeoff",
    "summarize",
]
