"""Monitoring while steering (issue §3; persona vectors, Chen et al. 2025).

The sentiment mean-difference vector at one layer steers the neutral prompts toward positive and
toward negative; the monitor (``concepts.monitor``) reads every token's projection onto the same
direction *before* the steer. Reported, with 95 % bootstrap intervals over prompts:

- Pearson correlation between a completion's mean projection and the independent judge's score
  (VADER compound), per condition (unsteered, steered up, steered down) and pooled;
- the shift of the monitor under steering (mean projection, and steered − unsteered paired by prompt).

Writes ``concepts_monitor_*`` (a per-completion CSV, the report, a token-coloured HTML page, the
per-token line figure and the monitor-vs-judge scatter) under the figures folder.
"""

from dataclasses import asdict
from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd

from workbench.artifacts import save_json, save_table, save_text
from workbench.concepts.bakeoff import BakeoffConfig, fit_methods
from workbench.concepts.judges import judge_for
from workbench.concepts.monitor import monitor_correlation, monitor_table, monitored_generate
from workbench.concepts.stats import bootstrap_ci
from workbench.concepts.steering import steering_edit
from workbench.experiments.export import save_figure
from workbench.paths import figures_dir
from workbench.plots.concepts import monitor_figure, monitor_html, monitor_scatter_figure
from workbench.prompts import neutral_prompts

BUDGETS = {
    "full": dict(n_prompts=48, seeds=(0, 1, 2), max_new_tokens=20, n_train=200, n_boot=2000),
    "small": dict(n_prompts=4, seeds=(0,), max_new_tokens=8, n_train=24, n_boot=200),
}
KIND = "concepts_monitor_summary"


def _per_prompt(table: pd.DataFrame, condition: str, column: str) -> np.ndarray:
    sub = table[table["condition"] == condition].sort_values(["prompt_index", "seed"])
    return sub.groupby("prompt_index")[column].mean().to_numpy(float)


def run_monitor(
    model,
    *,
    budget: str = "full",
    concept: str = "sentiment",
    layer: int = 6,
    method: str = "mean_diff",
    strength: float = 8.0,
    temperature: float = 0.7,
    directory: Union[str, Path, None] = None,
    static: bool = True,
    progress: bool = True,
) -> dict:
    """Run the monitored generations and write the files; returns the table, the numbers and paths."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    b = BUDGETS[budget]
    config = BakeoffConfig(concept=concept, layer=layer, methods=(method,), n_train=b["n_train"], controls=0)
    vector = fit_methods(model, config, progress=progress)[method]
    conditions = {
        "unsteered": None,
        f"toward positive ×{strength:g}": steering_edit(vector, strength, "positive"),
        f"toward negative ×{strength:g}": steering_edit(vector, strength, "negative"),
    }
    prompts = list(neutral_prompts(b["n_prompts"]))
    monitored = []
    for seed in b["seeds"]:
        monitored += monitored_generate(
            model,
            prompts,
            vector,
            conditions=conditions,
            max_new_tokens=b["max_new_tokens"],
            temperature=temperature,
            seed=seed,
        )
    judge = judge_for(concept)
    table = monitor_table(monitored, judge)
    nb = b["n_boot"]
    numbers: dict = {"correlation": {}, "mean_projection": {}, "shift": {}, "success": {}}
    for cond in conditions:
        sub = table[table["condition"] == cond]
        numbers["correlation"][cond] = asdict(monitor_correlation(sub, n_boot=nb))
        proj = _per_prompt(table, cond, "mean_projection")
        numbers["mean_projection"][cond] = asdict(bootstrap_ci(lambda x: x.mean(1), proj, n_boot=nb))
        hits = _per_prompt(table, cond, "hit")
        numbers["success"][cond] = asdict(bootstrap_ci(lambda x: x.mean(1), hits, n_boot=nb))
        if cond != "unsteered":
            base = _per_prompt(table, "unsteered", "mean_projection")
            numbers["shift"][cond] = asdict(bootstrap_ci(lambda x, y: (x - y).mean(1), proj, base, n_boot=nb))
    # pooled: a prompt's completions under every condition are resampled together
    order = {c: i for i, c in enumerate(conditions)}
    pooled = table.assign(seed=table["seed"] * len(conditions) + table["condition"].map(order))
    numbers["correlation"]["pooled"] = asdict(monitor_correlation(pooled, n_boot=nb))
    d = figures_dir(directory)
    formats = ("html", "png", "svg") if static else ("html",)
    paths = {"table": str(save_table(table, d / "concepts_monitor.csv"))}
    doc = {
        "concept": concept,
        "site": vector.site.short,
        "method": method,
        "strength": strength,
        "temperature": temperature,
        "budget": b,
        "judge": judge.name,
        "numbers": numbers,
    }
    paths["summary"] = str(save_json(d / "concepts_monitor_summary.json", doc, kind=KIND, version=1))
    shown = [m for m in monitored if m.seed == b["seeds"][0] and m.prompt in prompts[:4]]
    html = monitor_html(
        shown,
        title=f"{concept} monitor at {vector.site.short} ({method}), read before the steer; seed {b['seeds'][0]}",
    )
    paths["html"] = str(save_text(d / "concepts_monitor_tokens.html", f"<!doctype html><meta charset='utf-8'>{html}"))
    fig = monitor_figure(shown, title=f"Monitor per generated token ({concept}, {vector.site.short}, first 4 prompts)")
    paths["lines"] = str(save_figure(fig, "concepts_monitor_lines", directory=d, formats=formats)["html"])
    r = numbers["correlation"]["pooled"]
    fig = monitor_scatter_figure(
        table,
        title=f"Monitor vs VADER across {len(table)} completions: pooled r = {r['estimate']:.2f} "
        f"[{r['low']:.2f}, {r['high']:.2f}]",
    )
    paths["scatter"] = str(save_figure(fig, "concepts_monitor_scatter", directory=d, formats=formats)["html"])
    paths["report"] = str(save_text(d / "concepts_monitor_report.md", report_markdown(doc, len(table))))
    return {"table": table, "numbers": numbers, "paths": paths, "monitored": monitored}


def _iv(x: dict, digits: int = 2) -> str:
    return f"{x['estimate']:.{digits}f} [{x['low']:.{digits}f}, {x['high']:.{digits}f}]"


def report_markdown(doc: dict, n_completions: int) -> str:
    n = doc["numbers"]
    b = doc["budget"]
    lines = [
        f"# Monitoring while steering: {doc['concept']} at {doc['site']} "
        f"({doc['method']}, strength {doc['strength']:g})",
        "",
        f"{b['n_prompts']} neutral prompts × {len(b['seeds'])} seeds (temperature {doc['temperature']:g}), "
        f"{b['max_new_tokens']} tokens, {n_completions} completions. Monitor: projection of the state that emitted "
        "each token onto the concept direction, read before the steer; judge: VADER compound. "
        "95 % percentile-bootstrap intervals over prompts.",
        "",
        "| condition | VADER-positive share | mean projection | shift vs unsteered | r(monitor, VADER) |",
        "|---|---|---|---|---|",
    ]
    for cond in n["mean_projection"]:
        shift = _iv(n["shift"][cond]) if cond in n["shift"] else "–"
        lines.append(
            f"| {cond} | {_iv(n['success'][cond])} | {_iv(n['mean_projection'][cond])} | {shift} | "
            f"{_iv(n['correlation'][cond])} |"
        )
    lines += ["", f"Pooled over all conditions: r = {_iv(n['correlation']['pooled'])}."]
    return "\n".join(lines) + "\n"


__all__ = ["BUDGETS", "report_markdown", "run_monitor"]
