"""Measuring steering with judges that the steered model cannot fool, with bootstrap intervals.

For each steering condition (method, direction, strength) the same neutral prompts are completed
with KV-cached ``HookRegistry.generate`` — greedy, or sampled at ``temperature``/``top_p`` once per
sampling seed — and scored by:

- **success**: the share of completions an independent judge (``judges.py``) counts as showing the
  concept's positive side (e.g. VADER-positive share);
- **fluency**: perplexity of the completion tokens under the *unsteered* model,
  ``exp(Σ −log p(tᵢ | t_<i) / Σ tokens)`` pooled over the condition's completions
  (``workbench.likelihood.completion_nll``), and its ratio to the unsteered condition's perplexity;
- **side effects**: ``KL(p_unsteered ‖ p_steered)`` of the next-token distribution after each neutral
  prompt, averaged over prompts;
- **distinct-n**: unique n-grams / n-grams of a completion's tokens (n = 1, 2), averaged over
  completions (low values flag repetition loops, which perplexity rewards).

Every number comes with a 95 % percentile-bootstrap interval over prompts (``stats.bootstrap_ci``):
a prompt is the unit, carrying all its seeds (and, for the random-direction control, all its draws).
The perplexity ratio is resampled *paired* with the unsteered condition on the same prompts.

Conditions run side by side in one batch (``RowGroups``): one generation call serves several steering
vectors at once, each on its own block of rows; a condition may edit several sites (one ``RowGroups``
per site). ``steering_sweep`` adds the norm-matched random-direction control (``controls.py``).
The prompts default to ``workbench.prompts.neutral_prompts()``; figures are in ``workbench.plots.concepts``.

This module is longer than 400 lines on purpose: the four measures and their bootstrap intervals are
computed from one set of generations and must be resampled together, over the same prompts.
"""

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..likelihood import completion_nll
from ..positions import PositionSpec
from ..prompts import neutral_prompts
from ..registry import HookRegistry
from ..sites import Site
from ..tokens import encode
from ..validation import check_bool, check_choice, check_float, check_int, check_texts
from .controls import CONTROL_METHOD, control_edits
from .judges import Judge, judge_for
from .method import TOWARD, push_length
from .stats import LEVEL, N_BOOT, bootstrap_ci
from .steering import RowGroups, steering_edit
from .vectors import ConceptVector

# completions are scored 32 rows per forward (the batching the bake-off numbers were measured with)
NLL_BATCH = 32
METRICS = ("success", "mean_score", "perplexity", "perplexity_ratio", "kl", "distinct", "distinct_2")


@dataclass(frozen=True)
class Condition:
    """One steering condition. ``edit`` is an edit applied at the run's site, a mapping
    ``{site: edit}`` for a condition that edits several sites, or None (the unsteered baseline).
    Conditions with the same ``(method, toward, strength)`` and different ``draw`` (random control
    directions) are pooled in the summary."""

    method: str
    toward: str
    strength: float
    edit: object = field(default=None, compare=False)
    draw: Optional[int] = None

    @property
    def label(self) -> str:
        return "unsteered" if self.edit is None else f"{self.method}:{self.toward}:{self.strength:g}"

    def site_edits(self, model, default: Optional[Site]) -> dict[Site, object]:
        """``{Site: edit}`` of this condition (empty for the baseline)."""
        if self.edit is None:
            return {}
        if isinstance(self.edit, Mapping):
            out = {Site.parse(s, model): e for s, e in self.edit.items()}
        else:
            if default is None:
                raise ValueError(f"condition {self.label} has one edit but the run has no site to apply it at")
            out = {default: self.edit}
        for s, e in out.items():
            if not callable(e):
                raise TypeError(f"condition {self.label}: the edit at {s.short} is not callable: {e!r}")
        return out


@dataclass(frozen=True)
class GenerationTiming:
    """Wall time of the ``generate`` calls of a run: ``decode_tokens`` = rows × decoding steps (what
    was computed, as Hugging Face ``generate`` with ``min_new_tokens`` computes it), ``new_tokens`` =
    tokens up to each row's EOS."""

    seconds: float
    calls: int
    batch_size: int  # rows of the largest call
    decode_tokens: int
    new_tokens: int

    @property
    def tokens_per_second(self) -> float:
        return self.decode_tokens / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class SweepResult:
    """``table``: one row per condition (tidy, with ``<metric>_low``/``<metric>_high`` interval
    columns); ``completions``: one row per generated text (the raw data the table is computed from,
    ``condition_table``); ``timing``: the generation calls.
    ``workbench.plots.concepts.dose_response_figure(result.table)`` draws the table."""

    table: pd.DataFrame
    completions: pd.DataFrame
    timing: Optional[GenerationTiming] = None


def _steer_all(reg: HookRegistry, model, site: Optional[Site], chunk: Sequence[Condition], n: int, positions) -> None:
    """One ``RowGroups`` steer per site used by any condition of ``chunk`` (rows ``n`` per condition)."""
    per_cond = [c.site_edits(model, site) for c in chunk]
    sites = sorted({s for d in per_cond for s in d}, key=lambda s: (s.layer if s.layer is not None else -1, s.short))
    for s in sites:
        reg.steer(
            f"_conditions:{s.short}", s, RowGroups([d.get(s) for d in per_cond], [n] * len(chunk)), positions=positions
        )


def next_token_logprobs(
    model,
    site: Optional[Site],
    conditions: Sequence[Condition],
    prompts: Sequence[str],
    positions: PositionSpec = "all",
) -> torch.Tensor:
    """``log p(next token | prompt)`` for every (condition, prompt), ``[n_conditions, n_prompts, d_vocab]``."""
    reg = HookRegistry(model)
    n = len(prompts)
    _steer_all(reg, model, site, conditions, n, positions)
    with torch.no_grad():
        logits = reg.run(list(prompts) * len(conditions), need_logits=True, padding_side="left")
    return F.log_softmax(logits[:, -1].float(), -1).view(len(conditions), n, -1)


def _distinct(ids: list[int], n: int) -> float:
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def run_conditions(
    model,
    site: Union[str, Site, None],
    conditions: Sequence[Condition],
    prompts: Sequence[str],
    judge: Judge,
    *,
    max_new_tokens: int = 24,
    positions: PositionSpec = "all",
    temperature: float = 0.0,
    top_p: Optional[float] = None,
    seeds: Sequence[int] = (0,),
    max_rows: int = 160,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    ci_seed: int = 0,
    progress: bool = True,
) -> SweepResult:
    """Generate, judge and score every condition on the same prompts, once per sampling seed.
    Returns a ``SweepResult``: one row per condition with bootstrap intervals over prompts, one row
    per (condition, draw, seed, prompt) with the text and its scores, and the generation timing.

    Completions are greedy (``temperature=0``: give one seed) or seeded samples of ``max_new_tokens``
    tokens, with the condition's edit applied at ``positions``; at most ``max_rows`` rows go through
    one ``generate`` call (conditions side by side, ``RowGroups``). An unsteered condition is added
    when none is given."""
    site = None if site is None else Site.parse(site, model)
    prompts = check_texts("prompts", prompts)
    if not isinstance(judge, Judge):
        raise TypeError(f"judge must be a Judge (see concepts.judges.judge_for), got {type(judge).__name__}")
    if len(conditions) == 0:
        raise ValueError("run_conditions needs at least one condition")
    for i, c in enumerate(conditions):
        if not isinstance(c, Condition):
            raise TypeError(f"conditions[{i}] must be a Condition, got {type(c).__name__}")
        c.site_edits(model, site)  # every edit is callable and its sites exist, before generating
    check_int("max_new_tokens", max_new_tokens, min=1)
    check_float("temperature", temperature, min=0.0)
    if top_p is not None:
        check_float("top_p", top_p, min=0.0, max=1.0, min_open=True)
    if isinstance(seeds, (str, int)) or len(seeds) == 0:
        raise TypeError(f"seeds must be a non-empty sequence of ints, got {seeds!r}")
    seeds = [check_int("seed", s, min=0) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    if temperature == 0 and len(seeds) > 1:
        raise ValueError(f"greedy decoding (temperature=0) ignores the seed; give one seed, not {seeds}")
    check_int("max_rows", max_rows, min=1)
    check_bool("progress", progress)
    if not any(c.edit is None for c in conditions):
        conditions = [Condition("none", "none", 0.0, None), *conditions]
    n = len(prompts)
    per_call = max(1, max_rows // n)
    records = []
    prompt_ids = [encode(model, p) for p in prompts]
    chunks = [conditions[i : i + per_call] for i in range(0, len(conditions), per_call)]
    eos = model.tokenizer.eos_token_id
    gen_seconds, decode_tokens, new_tokens, batch_size = 0.0, 0, 0, 0
    bar = tqdm(total=len(chunks) * len(seeds), desc="steering conditions", disable=not progress, leave=False)
    for seed in seeds:
        for chunk in chunks:
            reg = HookRegistry(model)
            _steer_all(reg, model, site, chunk, n, positions)
            t0 = time.perf_counter()
            gen = reg.generate(
                prompts * len(chunk), max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed
            )
            gen_seconds += time.perf_counter() - t0
            steps = gen.new_tokens.shape[1]
            decode_tokens += gen.new_tokens.shape[0] * steps
            batch_size = max(batch_size, gen.new_tokens.shape[0])
            new_mask = gen.attention_mask[:, -steps:]
            new_tokens += int(new_mask.sum())
            for k, cond in enumerate(chunk):
                for j in range(n):
                    row = k * n + j
                    ids = [t for t, m in zip(gen.new_tokens[row].tolist(), new_mask[row].tolist()) if m]
                    if ids and ids[-1] == eos:
                        ids = ids[:-1]
                    records.append(
                        {
                            "condition": cond.label,
                            "method": cond.method,
                            "toward": cond.toward,
                            "strength": cond.strength,
                            "draw": -1 if cond.draw is None else cond.draw,
                            "seed": seed,
                            "prompt_index": j,
                            "prompt": prompts[j],
                            "completion": gen.completions[row],
                            "_ids": ids,
                        }
                    )
            bar.update(1)
    bar.close()
    timing = GenerationTiming(gen_seconds, len(chunks) * len(seeds), batch_size, decode_tokens, new_tokens)
    table = pd.DataFrame(records)
    nll_sum, n_tokens = completion_nll(
        model, [prompt_ids[j] for j in table["prompt_index"]], list(table["_ids"]), batch_size=NLL_BATCH
    )
    table["nll_sum"] = nll_sum.tolist()
    table["n_tokens"] = n_tokens.tolist()
    table["distinct"] = [_distinct(ids, 1) for ids in table["_ids"]]
    table["distinct_2"] = [_distinct(ids, 2) for ids in table["_ids"]]
    table["score"] = [judge.score(t) for t in table["completion"]]
    table["hit"] = [judge.hit(t) for t in table["completion"]]
    table = table.drop(columns="_ids")
    # side effects: KL(unsteered || steered) of the next-token distribution after each prompt
    logp = torch.cat([next_token_logprobs(model, site, chunk, prompts, positions) for chunk in chunks], 0)
    base = next(i for i, c in enumerate(conditions) if c.edit is None)
    p0 = logp[base]
    kl = (p0.exp() * (p0 - logp)).sum(-1)  # [n_conditions, n_prompts]
    kl_of = {(c.label, -1 if c.draw is None else c.draw): kl[i].tolist() for i, c in enumerate(conditions)}
    table["kl"] = [kl_of[(c, d)][j] for c, d, j in zip(table["condition"], table["draw"], table["prompt_index"])]
    table["judge"] = judge.name
    summary = condition_table(table, n_boot=n_boot, level=level, seed=ci_seed)
    return SweepResult(summary, table, timing)


# ----------------------------------------------------------------------------- the table and its intervals
_SUMS = ("hit", "score", "nll_sum", "n_tokens", "kl")


def unit_arrays(completions: pd.DataFrame, condition: str) -> dict[str, np.ndarray]:
    """Per prompt (the bootstrap unit, in ``prompt_index`` order) the sums over one condition's
    completions (all seeds and draws): ``hit``, ``score``, ``nll_sum``, ``n_tokens``, ``kl`` (summed
    over the rows that carry it), ``rows``, and ``distinct``/``distinct_2`` sums with their counts."""
    sub = completions[completions["condition"] == condition]
    if sub.empty:
        raise ValueError(f"no completions of condition {condition!r}; have {sorted(set(completions['condition']))}")
    g = sub.groupby("prompt_index", sort=True)
    out = {k: g[k].sum().to_numpy(dtype=float) for k in _SUMS}
    out["rows"] = g.size().to_numpy(dtype=float)
    for k in ("distinct", "distinct_2"):
        out[k] = g[k].sum(min_count=0).to_numpy(dtype=float)  # NaN (empty completion) counts as 0 ...
        out[f"{k}_n"] = g[k].count().to_numpy(dtype=float)  # ... and is not counted
    return out


def _ppl(nll, tok):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.exp(nll.sum(1) / tok.sum(1))


def _share(num, den):
    with np.errstate(divide="ignore", invalid="ignore"):
        return num.sum(1) / den.sum(1)


# metric -> (statistic, the unit arrays it takes; "base:" arrays come from the unsteered condition)
_STATISTICS = {
    "success": (_share, ("hit", "rows")),
    "mean_score": (_share, ("score", "rows")),
    "perplexity": (_ppl, ("nll_sum", "n_tokens")),
    "perplexity_ratio": (
        lambda nll, tok, nll0, tok0: _ppl(nll, tok) / _ppl(nll0, tok0),
        ("nll_sum", "n_tokens", "base:nll_sum", "base:n_tokens"),
    ),
    "kl": (_share, ("kl", "rows")),
    "distinct": (_share, ("distinct", "distinct_n")),
    "distinct_2": (_share, ("distinct_2", "distinct_2_n")),
}


def metric_interval(
    completions: pd.DataFrame,
    condition: str,
    metric: str,
    *,
    base: str = "unsteered",
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = 0,
):
    """``stats.Interval`` of one metric of one condition, resampling prompts (paired with ``base``
    for the perplexity ratio)."""
    check_choice("metric", metric, tuple(_STATISTICS))
    stat, keys = _STATISTICS[metric]
    units, base_units = unit_arrays(completions, condition), None
    arrays = []
    for k in keys:
        if k.startswith("base:"):
            base_units = base_units if base_units is not None else unit_arrays(completions, base)
            arrays.append(base_units[k[5:]])
        else:
            arrays.append(units[k])
    return bootstrap_ci(stat, *arrays, n_boot=n_boot, level=level, seed=seed)


def condition_table(
    completions: pd.DataFrame, *, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0
) -> pd.DataFrame:
    """One row per condition of a completions table (``run_conditions``): every metric of
    ``METRICS`` with ``<metric>_low``/``<metric>_high``, its percentile-bootstrap interval over
    prompts at ``level`` (the same ``n_boot`` resamples of the prompts for every condition, drawn with
    ``seed``), plus ``n`` (completions), ``n_prompts``, ``n_seeds``, ``n_draws``. The unsteered
    condition must be present (the perplexity ratio's reference)."""
    need = {"condition", "method", "toward", "strength", "draw", "seed", "prompt_index", *_SUMS}
    missing = sorted(need - set(completions.columns))
    if missing:
        raise ValueError(f"condition_table: the completions lack column(s) {missing}")
    if "unsteered" not in set(completions["condition"]):
        raise ValueError("condition_table needs the unsteered condition (the perplexity ratio's reference)")
    counts = completions.groupby("condition")["prompt_index"].nunique()
    if counts.nunique() != 1:
        raise ValueError(f"every condition must cover the same prompts (paired resampling), got {counts.to_dict()}")
    rows = []
    for label, sub in completions.groupby("condition", sort=False):
        first = sub.iloc[0]
        row = {
            "method": first["method"],
            "toward": first["toward"],
            "strength": float(first["strength"]),
            "condition": label,
        }
        for metric in METRICS:
            iv = metric_interval(completions, label, metric, n_boot=n_boot, level=level, seed=seed)
            row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = iv.estimate, iv.low, iv.high
        row.update(
            n=len(sub),
            n_prompts=int(sub["prompt_index"].nunique()),
            n_seeds=int(sub["seed"].nunique()),
            n_draws=int(sub["draw"].nunique()),
        )
        if "judge" in sub.columns:
            row["judge"] = first["judge"]
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["level"], table.attrs["n_boot"] = level, n_boot
    return table


# ----------------------------------------------------------------------------- sweeps
VectorLike = Union[ConceptVector, Sequence[ConceptVector]]


def _as_stack(item, i: int) -> tuple[ConceptVector, ...]:
    """A vector, or vectors of one method at distinct sites (one condition edits all their sites)."""
    stack = (item,) if isinstance(item, ConceptVector) else tuple(item)
    if not stack or not all(isinstance(v, ConceptVector) for v in stack):
        raise TypeError(f"vectors[{i}] must be a ConceptVector or a sequence of them, got {item!r}")
    if len({v.method for v in stack}) != 1 or len({v.site for v in stack}) != len(stack):
        raise ValueError(
            f"vectors[{i}]: a stack needs one method at distinct sites, got {[str(v.site) for v in stack]}"
        )
    return stack


def steering_sweep(
    model,
    vectors: Union[VectorLike, Sequence[VectorLike]],
    coefficients: Union[Sequence[float], dict[str, Sequence[float]]],
    *,
    concept: Optional[str] = None,
    judge: Optional[Judge] = None,
    toward: Sequence[str] = TOWARD,
    prompts: Optional[Sequence[str]] = None,
    controls: int = 0,
    control_grid: Optional[Sequence[float]] = None,
    control_seed: int = 0,
    **run_options,
) -> SweepResult:
    """Run a coefficient grid for one or more concept vectors over a fixed set of neutral prompts
    (default ``workbench.prompts.neutral_prompts()``). An item of ``vectors`` is a ``ConceptVector``
    or a stack of one method's vectors at several sites (each condition then edits every site of the
    stack at the same strength). ``coefficients`` is one grid for every method or a dict
    ``{method: grid}`` (strengths as in ``steering_edit``).

    ``controls=K`` adds the norm-matched random-direction control (``controls.py``): ``K`` random
    unit directions, each scaled to the push length ``‖μ⁺ − μ⁻‖`` of the first vector, at the
    strengths of ``control_grid`` (default: ``coefficients`` when it is one grid), pooled per
    strength into rows of method ``"random"``; it edits the first vector's site.

    ``run_options`` go to ``run_conditions`` (``max_new_tokens``, ``positions``, ``temperature``,
    ``top_p``, ``seeds``, ``max_rows``, ``n_boot``, ``level``, ``ci_seed``, ``progress``). Returns the
    tidy table (concept, site, method, toward, strength, each metric with its interval, n ...)."""
    items = [vectors] if isinstance(vectors, ConceptVector) else list(vectors)
    if not items:
        raise ValueError("steering_sweep needs at least one ConceptVector")
    stacks = [_as_stack(item, i) for i, item in enumerate(items)]
    first = stacks[0][0]
    name = concept or first.concept
    judge = judge or judge_for(name)
    if isinstance(toward, str) or len(toward) == 0:
        raise ValueError(f"toward must be a non-empty sequence of 'positive'/'negative', got {toward!r}")
    for t in toward:
        check_choice("toward", t, TOWARD)
    check_int("controls", controls, min=0)
    conds = [Condition("none", "none", 0.0, None)]
    sites_of: dict[str, str] = {}
    for stack in stacks:
        method = stack[0].method
        grid = coefficients.get(method) if isinstance(coefficients, dict) else coefficients
        if grid is None:
            raise ValueError(f"no coefficient grid for method {method!r}; the dict has {sorted(coefficients)}")
        sites_of[method] = "+".join(v.site.short for v in stack)
        for t in toward:
            for s in grid:
                edits = {v.site: steering_edit(v, float(s), t) for v in stack}
                conds.append(Condition(method, t, float(s), edits))
    if controls:
        grid = control_grid if control_grid is not None else coefficients
        if isinstance(grid, dict):
            raise ValueError("give control_grid when coefficients is a dict of per-method grids")
        edits = control_edits(first.d_model, push_length(first), grid, toward, controls, control_seed)
        sites_of[CONTROL_METHOD] = first.site.short
        conds += [Condition(CONTROL_METHOD, t, s, {first.site: e}, draw=k) for t, s, k, e in edits]
    prompts = neutral_prompts() if prompts is None else prompts
    result = run_conditions(model, None, conds, prompts, judge, **run_options)
    table = result.table
    table.insert(0, "concept", name)
    table.insert(1, "site", [sites_of.get(m, first.site.short) for m in table["method"]])
    return result


__all__ = [
    "METRICS",
    "Condition",
    "GenerationTiming",
    "SweepResult",
    "condition_table",
    "metric_interval",
    "next_token_logprobs",
    "run_conditions",
    "steering_sweep",
    "unit_arrays",
]
