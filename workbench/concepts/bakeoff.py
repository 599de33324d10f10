"""The steering bake-off: every method on the same concept, layer, prompts, coefficient grid and metrics,
against a norm-matched random-direction control, with bootstrap intervals over prompts.

``fit_methods`` fits all configured concept vectors at one site from the same training activations;
``run_bakeoff`` steers with each over the same grid (``steering_sweep``: seeded samples, several
seeds per prompt, conditions side by side in each generation call) and ``summarize`` reads off, per
method and direction, the best success reached while perplexity stays within ``max_ratio`` × the
unsteered perplexity, each with its 95 % interval.

**Winner rule.** The controllable range is (best share toward positive) − (best share toward
negative) for two-sided concepts, (best share toward positive) − (unsteered share) otherwise, with a
paired bootstrap interval over prompts. The method with the widest range wins only if its interval
lies entirely above the runner-up's; otherwise the result is ``"no clear winner"``. The same rule
per direction gives ``winners["positive"]`` (highest share) and ``winners["negative"]`` (lowest).
The random control is reported next to the methods and never wins.

This module is longer than 400 lines on purpose: the bake-off's config, its conditions (methods,
directions, strengths, controls, seeds) and the interval summary with the winner rule are one protocol.
"""

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import pandas as pd
import torch

from ..positions import Positions
from ..prompts import neutral_prompts
from ..sites import Site
from ..validation import check_choice, check_fields, check_float, check_str
from .controls import CONTROL_METHOD
from .data import available_concepts, load_concept
from .evaluate import GenerationTiming, steering_sweep, unit_arrays
from .extract import extract
from .method import TOWARD, get_method, method_class, method_names
from .methods import METHODS
from .stats import LEVEL, N_BOOT, Interval, bootstrap_ci
from .templates import BUILDERS
from .vectors import ConceptVector, fit_vector

GRID = (4.0, 8.0, 12.0)
NO_CLEAR_WINNER = "no clear winner"
# Named budgets: the overrides each applies to the defaults ("small": a tiny run for tests and notebooks).
BUDGETS: dict[str, dict] = {
    "small": dict(
        n_train=40,
        n_pool=20,
        n_prompts=4,
        max_new_tokens=8,
        grid=(8.0,),
        seeds=(0,),
        controls=1,
        n_boot=200,
        method_layers=(("linear_act", (0, 4)),),
        method_grids=(("linear_act", (1.0,)),),
    ),
    "full": {},
}


def _pairs(name: str, value) -> tuple:
    """``((method, (values...)), ...)`` from pairs or a dict."""
    items = value.items() if isinstance(value, dict) else value
    if isinstance(items, str) or not hasattr(items, "__iter__"):
        raise TypeError(f"BakeoffConfig.{name} must be (method, values) pairs or a dict, got {value!r}")
    out = []
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], str):
            raise TypeError(f"BakeoffConfig.{name} entries must be (method, values) pairs, got {item!r}")
        out.append((item[0], _tuple(f"{name}[{item[0]!r}]", item[1])))
    return tuple(out)


def _tuple(name: str, value) -> tuple:
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise TypeError(f"BakeoffConfig.{name} must be a tuple, got {value!r}")
    return tuple(value)


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
    methods: Sequence[str] = METHODS  # registered method names, compared in this order (stored as a tuple)
    grid: Sequence[float] = GRID  # strengths, in units of ‖μ⁺ − μ⁻‖ (stored as a tuple)
    toward: Sequence[str] = TOWARD  # directions to steer (stored as a tuple)
    n_train: int = 200  # training pairs per side for fitting
    n_pool: int = 100  # texts per side of every concept for mean-centring's "all training" mean
    n_prompts: int = 48  # neutral prompts completed per condition: the bootstrap's units
    max_new_tokens: int = 20  # tokens per completion
    temperature: float = 0.7  # sampling temperature (0 = greedy; then give one seed)
    seeds: Sequence[int] = (0, 1, 2)  # sampling seeds: every prompt is completed once per seed (a tuple)
    controls: int = 3  # random unit directions of the norm-matched control (0 = no control row)
    control_seed: int = 0  # seeds the control's directions
    reduce: str = "mean"  # how a text's tokens become one activation: "mean" (after the first) or "last"
    positions: str = "all"  # positions the edit acts on (workbench.positions)
    C: float = 1.0  # the logistic probe's inverse L2 strength
    max_ratio: float = 2.0  # fluency limit: a strength counts only while perplexity ≤ max_ratio × unsteered
    n_boot: int = N_BOOT  # bootstrap resamples of the prompts
    level: float = LEVEL  # interval coverage
    ci_seed: int = 0  # seeds the bootstrap's resamples (the same for every condition: paired)
    max_rows: int = 160  # rows per generation call (conditions side by side)
    # methods that steer several layers at once, fitted with ConceptMethod.fit_sites: (method, layers);
    # empty layers = every layer from 0 to `layer` (Linear-AcT transports a stack of layers)
    method_layers: tuple = (("linear_act", ()),)
    # per-method strength grids (method, grid); others use the method's default_grid, else `grid`
    method_grids: tuple = ()

    def __post_init__(self) -> None:
        for name in ("methods", "grid", "toward", "seeds"):
            object.__setattr__(self, name, _tuple(name, getattr(self, name)))
        for name in ("method_layers", "method_grids"):
            object.__setattr__(self, name, _pairs(name, getattr(self, name)))
        check_str("BakeoffConfig.concept", self.concept)
        check_str("BakeoffConfig.stream", self.stream)
        check_fields(
            self,
            layer=dict(kind="int", min=0),
            n_train=dict(kind="int", min=1),
            n_pool=dict(kind="int", min=1),
            n_prompts=dict(kind="int", min=1, max=len(neutral_prompts())),
            max_new_tokens=dict(kind="int", min=1),
            temperature=dict(kind="float", min=0.0),
            controls=dict(kind="int", min=0),
            control_seed=dict(kind="int", min=0),
            C=dict(kind="float", min=0.0, min_open=True),
            max_ratio=dict(kind="float", min=1.0),
            n_boot=dict(kind="int", min=100),
            ci_seed=dict(kind="int", min=0),
            max_rows=dict(kind="int", min=1),
        )
        check_float("BakeoffConfig.level", self.level, min=0.5, max=1.0, max_open=True)
        unknown = [m for m in self.methods if m not in method_names()]
        if unknown or not self.methods:
            raise ValueError(f"unknown methods {unknown} (or none given); choose from {method_names()}")
        if not self.grid or any(
            isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g <= 0 for g in self.grid
        ):
            raise ValueError(f"grid must hold positive strengths, got {self.grid}")
        if not self.toward or set(self.toward) - set(TOWARD):
            raise ValueError(f"toward must be a non-empty subset of {TOWARD}, got {self.toward}")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be non-negative ints, got {self.seeds}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        if self.temperature == 0 and len(self.seeds) > 1:
            raise ValueError(f"greedy decoding (temperature=0) ignores the seed; give one seed, not {self.seeds}")
        check_choice("BakeoffConfig.reduce", self.reduce, ("mean", "last"))
        Positions.parse(self.positions)
        for name in ("method_layers", "method_grids"):
            for method, values in getattr(self, name):
                method_class(method)  # raises, listing the registered methods
                if name == "method_layers" and any(
                    isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in values
                ):
                    raise ValueError(f"BakeoffConfig.method_layers[{method!r}] must hold layer indices, got {values}")
                if name == "method_grids" and (
                    not values
                    or any(
                        isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in values
                    )
                ):
                    raise ValueError(f"BakeoffConfig.method_grids[{method!r}] must hold finite strengths, got {values}")

    def sites_for(self, method: str) -> tuple[Site, ...]:
        """The sites ``method`` is fitted and steers at: ``site``, or its ``method_layers`` stack."""
        layers = dict(self.method_layers).get(method)
        if layers is None:
            return (self.site,)
        return tuple(Site(layer, self.stream) for layer in (layers or range(self.layer + 1)))

    def grid_for(self, method: str) -> tuple[float, ...]:
        """``method_grids[method]``, else the method's ``default_grid``, else ``grid``."""
        grid = dict(self.method_grids).get(method) or method_class(method).default_grid or self.grid
        return tuple(float(g) for g in grid)

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
    """Activations of the training texts of every shipped template concept (``n_per_side`` per side
    each; ``templates.BUILDERS``): the "all training activations" that mean-centring subtracts
    (Jorgensen et al. 2023). Real-text sets are left out, so adding one does not move the pool."""
    texts = []
    for name in (c for c in available_concepts() if c in BUILDERS):
        tr = load_concept(name).train.head(n_per_side)
        texts += tr.texts
    return extract(model, texts, site, reduce, progress=progress)[site.short]


def fit_methods(model, config: BakeoffConfig, *, progress: bool = False) -> dict[str, ConceptVector | tuple]:
    """All configured methods' vectors for ``config.concept`` from the same training texts: a
    ``ConceptVector`` at ``config.site`` (one shared extraction), or for methods with a layer stack
    (``config.sites_for``) the tuple ``method.fit_sites`` returns."""
    data = load_concept(config.concept).train.head(config.n_train)
    acts = extract(model, data.texts, config.site, config.reduce, progress=progress)[config.site.short]
    n = len(data.positive)
    pos, neg = acts[:n], acts[n:]
    common = dict(reduce=config.reduce, n_train=config.n_train, layer=config.layer)
    pools: dict[Site, torch.Tensor] = {}

    def pool(site: Site) -> torch.Tensor:
        if site not in pools:
            pools[site] = pool_activations(model, site, config.n_pool, config.reduce, progress=progress)
        return pools[site]

    out: dict[str, ConceptVector | tuple] = {}
    for m in config.methods:
        cls = method_class(m)
        sites = config.sites_for(m)
        if sites == (config.site,):
            all_training = pool(config.site) if cls.needs_all_training else None
            out[m] = fit_vector(
                m,
                config.site,
                pos,
                neg,
                all_training=all_training,
                C=config.C,
                concept=config.concept,
                extra_params=common,
            )
            continue
        method = get_method(m, **({"C": config.C} if "C" in cls.option_names() else {}))
        out[m] = method.fit_sites(
            model,
            sites,
            data.positive,
            data.negative,
            reduce=config.reduce,
            all_training={s: pool(s) for s in sites} if cls.needs_all_training else None,
            positions=config.positions,
            concept=config.concept,
            extra_params=common,
            progress=progress,
        )
    return out


@dataclass
class BakeoffResult:
    """``table``: one row per condition with intervals (``steering_sweep``); ``completions``: one row
    per generated text; ``summary``: one row per method and the control (``summarize``); the
    ``winner`` by controllable range (or ``"no clear winner"``) and ``winners`` per criterion; wall
    time; the vectors; the generation timing. Figures: ``workbench.plots.concepts.bakeoff_figures``;
    files: ``workbench.experiments.bakeoff``."""

    config: BakeoffConfig
    table: pd.DataFrame
    completions: pd.DataFrame
    summary: pd.DataFrame
    winner: str
    seconds: float
    vectors: dict[str, ConceptVector | tuple] = field(default_factory=dict)
    winners: dict[str, str] = field(default_factory=dict)
    timing: Optional[GenerationTiming] = None


def _interval_rule(
    names: list[str], intervals: list[Interval], *, higher_is_better: bool = True
) -> tuple[str, Optional[str]]:
    """The best name by estimate if its interval lies strictly beyond the runner-up's, else
    ``NO_CLEAR_WINNER``; also returns the runner-up."""
    ok = [(n, iv) for n, iv in zip(names, intervals) if math.isfinite(iv.estimate)]
    if not ok:
        return NO_CLEAR_WINNER, None
    ok.sort(key=lambda p: p[1].estimate, reverse=higher_is_better)
    if len(ok) == 1:
        return ok[0][0], None
    (best, a), (second, b) = ok[0], ok[1]
    separated = a.low > b.high if higher_is_better else a.high < b.low
    return (best if separated else NO_CLEAR_WINNER), second


def _pick(part: pd.DataFrame, toward: str, max_ratio: float) -> Optional[pd.Series]:
    ok = part[part["perplexity_ratio"] <= max_ratio]
    if ok.empty:
        return None
    return ok.loc[ok["success"].idxmax() if toward == "positive" else ok["success"].idxmin()]


def _range_interval(
    completions: Optional[pd.DataFrame],
    pos_label: Optional[str],
    neg_label: Optional[str],
    *,
    n_boot: int,
    level: float,
    seed: int,
) -> Interval:
    """Paired bootstrap of ``success(pos_label) − success(neg_label)`` over prompts."""
    nan = Interval(float("nan"), float("nan"), float("nan"), level, n_boot)
    if completions is None or pos_label is None or neg_label is None:
        return nan
    a, b = unit_arrays(completions, pos_label), unit_arrays(completions, neg_label)
    return bootstrap_ci(
        lambda h1, n1, h0, n0: h1.sum(1) / n1.sum(1) - h0.sum(1) / n0.sum(1),
        a["hit"],
        a["rows"],
        b["hit"],
        b["rows"],
        n_boot=n_boot,
        level=level,
        seed=seed,
    )


def summarize(
    table: pd.DataFrame,
    completions: Optional[pd.DataFrame] = None,
    *,
    max_ratio: float = 2.0,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per method (and the random control): the best positive-direction success and best (lowest)
    negative-direction success among strengths with perplexity ratio ≤ ``max_ratio`` (point
    estimates pick the strength), each with its interval; the controllable range between them with a
    paired bootstrap interval (needs ``completions``; NaN without); whether each pick is separated
    from the control at the same strength; and the winners by the interval rule (module docstring):
    ``{"range": ..., "positive": ..., "negative": ...}``."""
    if not (table["method"] == "none").any():
        raise ValueError("summarize needs the unsteered row (method 'none')")
    base = table[table["method"] == "none"].iloc[0]
    has_ci = "success_low" in table.columns
    control = table[table["method"] == CONTROL_METHOD]
    two_sided = {"positive", "negative"} <= set(table["toward"])
    rows = []
    for method, sub in table[table["method"] != "none"].groupby("method", sort=False):
        row = {"method": method, "is_control": method == CONTROL_METHOD, "unsteered_success": float(base["success"])}
        if has_ci:
            row["unsteered_success_low"], row["unsteered_success_high"] = (
                float(base["success_low"]),
                float(base["success_high"]),
            )
        chosen = {}
        for toward in ("positive", "negative"):
            part = sub[sub["toward"] == toward]
            if part.empty:
                continue
            best = _pick(part, toward, max_ratio)
            if best is not None and "condition" in best:
                chosen[toward] = str(best["condition"])
            for key in ("success", "perplexity_ratio", "kl", "distinct"):
                name = "ppl_ratio" if key == "perplexity_ratio" else key
                for suffix in ("", "_low", "_high") if has_ci else ("",):
                    value = (
                        float("nan") if best is None or f"{key}{suffix}" not in best else float(best[f"{key}{suffix}"])
                    )
                    row[f"{toward}_{name}{suffix}"] = value
            row[f"{toward}_strength"] = float("nan") if best is None else float(best["strength"])
            # closest approach irrespective of fluency, to report how near each method comes
            extreme = part.loc[part["success"].idxmax() if toward == "positive" else part["success"].idxmin()]
            row[f"{toward}_success_any_ppl"] = float(extreme["success"])
            row[f"{toward}_ppl_ratio_at_that"] = float(extreme["perplexity_ratio"])
            # separated from the control at the same strength (and on the steered side of it)?
            ctrl = control[(control["toward"] == toward) & (control["strength"] == row[f"{toward}_strength"])]
            if has_ci and best is not None and not ctrl.empty and method != CONTROL_METHOD:
                c = ctrl.iloc[0]
                sep = (
                    best["success_low"] > c["success_high"]
                    if toward == "positive"
                    else best["success_high"] < c["success_low"]
                )
                row[f"{toward}_beats_control"] = bool(sep)
        base_label = "unsteered" if "condition" in table.columns else None
        pos_label = chosen.get("positive") or base_label
        neg_label = (chosen.get("negative") or base_label) if two_sided else base_label
        pos = row.get("positive_success", float("nan"))
        neg = row.get("negative_success", float("nan"))
        pos = row["unsteered_success"] if not math.isfinite(pos) else pos
        neg = row["unsteered_success"] if not (two_sided and math.isfinite(neg)) else neg
        row["controllable_range"] = pos - neg
        iv = _range_interval(completions, pos_label, neg_label, n_boot=n_boot, level=level, seed=seed)
        row["controllable_range_low"], row["controllable_range_high"] = iv.low, iv.high
        rows.append(row)
    summary = pd.DataFrame(rows).sort_values(
        ["is_control", "controllable_range"], ascending=[True, False], kind="stable"
    )
    summary = summary.reset_index(drop=True)
    methods = summary[~summary["is_control"]]
    names = list(methods["method"])

    def col_iv(prefix: str) -> list[Interval]:
        out = []
        for _, r in methods.iterrows():
            est = r.get(prefix, float("nan"))
            lo, hi = r.get(f"{prefix}_low", float("nan")), r.get(f"{prefix}_high", float("nan"))
            out.append(Interval(float(est), float(lo), float(hi), level, n_boot))
        return out

    winners = {"range": _interval_rule(names, col_iv("controllable_range"))[0]}
    if "positive_success" in summary.columns:
        winners["positive"] = _interval_rule(names, col_iv("positive_success"))[0]
    if "negative_success" in summary.columns:
        winners["negative"] = _interval_rule(names, col_iv("negative_success"), higher_is_better=False)[0]
    return summary, winners


def run_bakeoff(model, config: BakeoffConfig, *, progress: bool = True) -> BakeoffResult:
    """Fit every method, run the same grid (and the random control) on the same prompts and seeds,
    and summarise with intervals."""
    if not isinstance(config, BakeoffConfig):
        raise TypeError(f"config must be a BakeoffConfig, got {type(config).__name__}")
    start = time.perf_counter()
    vectors = fit_methods(model, config, progress=progress)
    sweep = steering_sweep(
        model,
        list(vectors.values()),
        {m: config.grid_for(m) for m in vectors},
        concept=config.concept,
        toward=config.toward,
        prompts=neutral_prompts(config.n_prompts),
        controls=config.controls,
        control_grid=config.grid,
        control_seed=config.control_seed,
        max_new_tokens=config.max_new_tokens,
        positions=config.positions,
        temperature=config.temperature,
        seeds=config.seeds,
        max_rows=config.max_rows,
        n_boot=config.n_boot,
        level=config.level,
        ci_seed=config.ci_seed,
        progress=progress,
    )
    summary, winners = summarize(
        sweep.table,
        sweep.completions,
        max_ratio=config.max_ratio,
        n_boot=config.n_boot,
        level=config.level,
        seed=config.ci_seed,
    )
    seconds = time.perf_counter() - start
    return BakeoffResult(
        config, sweep.table, sweep.completions, summary, winners["range"], seconds, vectors, winners, sweep.timing
    )


def interval_text(row: Union[pd.Series, dict], key: str, digits: int = 2) -> str:
    """``"0.62 [0.55, 0.70]"`` from the ``key``, ``key_low`` and ``key_high`` entries of a row."""
    est = row.get(key, float("nan"))
    lo, hi = row.get(f"{key}_low", float("nan")), row.get(f"{key}_high", float("nan"))
    if est is None or not np.isfinite(est):
        return "–"
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{est:.{digits}f}"
    return f"{est:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


__all__ = [
    "BUDGETS",
    "GRID",
    "NO_CLEAR_WINNER",
    "BakeoffConfig",
    "BakeoffResult",
    "fit_methods",
    "interval_text",
    "pool_activations",
    "run_bakeoff",
    "summarize",
]
