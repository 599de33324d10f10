"""Composition (issue §4; van der Weij et al. 2024): sentiment and English → French steered at once.

Three schemes (``concepts.compose``) against each concept steered alone, on the neutral prompts with
several sampling seeds; every completion is judged for both concepts (VADER for sentiment,
py3langid for French). Reported with 95 % bootstrap intervals over prompts: each concept's success
under each scheme, under its single-concept baseline, and their paired difference.

Writes ``concepts_compose.csv`` (one row per condition and concept), ``concepts_compose_report.md``
and a figure; no completions.
"""

from pathlib import Path
from typing import Union

import pandas as pd

from workbench.artifacts import save_table, save_text
from workbench.concepts.bakeoff import BakeoffConfig, fit_methods, interval_text
from workbench.concepts.compose import ConceptPush, composition_conditions, rejudge
from workbench.concepts.evaluate import run_conditions, unit_arrays
from workbench.concepts.judges import judge_for
from workbench.concepts.stats import bootstrap_ci
from workbench.experiments.export import save_figure
from workbench.paths import figures_dir
from workbench.plots.concepts import composition_figure
from workbench.prompts import neutral_prompts

BUDGETS = {
    "full": dict(n_prompts=48, seeds=(0, 1, 2), max_new_tokens=20, n_train=200, n_boot=2000),
    "small": dict(n_prompts=4, seeds=(0,), max_new_tokens=8, n_train=24, n_boot=200),
}
CONCEPTS = {"sentiment": "sentiment", "French": "language"}  # display name -> shipped concept


def _vectors(model, concept: str, layer: int, methods: tuple[str, ...], n_train: int) -> dict:
    config = BakeoffConfig(concept=concept, layer=layer, methods=methods, n_train=n_train, controls=0)
    return fit_methods(model, config)


def baseline_for(scheme: str, concept: str) -> str:
    """The single-concept condition a scheme's success is compared with."""
    if scheme.startswith("sum@"):
        return f"{concept} alone@{scheme.split('@')[1]}"
    if scheme.startswith("own layers@"):  # "own layers@La+Lb": A's layer first
        layers = scheme.split("@")[1].split("+")
        return f"{concept} alone@{layers[list(CONCEPTS).index(concept)]}"
    if scheme.startswith("compose ("):
        method, layer = scheme[len("compose (") :].split(")@")
        return f"{concept} alone ({method})@{layer}"
    raise ValueError(f"not a scheme: {scheme!r}")


def run_compose(
    model,
    *,
    budget: str = "full",
    shared_layer: int = 6,
    own_layers: tuple[int, int] = (6, 10),
    strengths: tuple[float, float] = (8.0, 8.0),
    compose_method: str = "ace",
    temperature: float = 0.7,
    directory: Union[str, Path, None] = None,
    static: bool = True,
    progress: bool = True,
) -> dict:
    """Fit, run every condition once, judge both concepts, and write the files."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    b = BUDGETS[budget]
    pushes = []
    for (name, concept), own, strength in zip(CONCEPTS.items(), own_layers, strengths):
        shared = _vectors(model, concept, shared_layer, ("mean_diff", compose_method), b["n_train"])
        at_own = (
            shared["mean_diff"]
            if own == shared_layer
            else _vectors(model, concept, own, ("mean_diff",), b["n_train"])["mean_diff"]
        )
        pushes.append(ConceptPush(name, shared["mean_diff"], at_own, shared[compose_method], strength))
    conditions = composition_conditions(*pushes)
    judges = {name: judge_for(concept) for name, concept in CONCEPTS.items()}
    run = run_conditions(
        model,
        None,
        conditions,
        list(neutral_prompts(b["n_prompts"])),
        judges["sentiment"],
        max_new_tokens=b["max_new_tokens"],
        temperature=temperature,
        seeds=b["seeds"],
        n_boot=b["n_boot"],
        progress=progress,
    )
    rows = []
    for name, judge in judges.items():
        table = rejudge(run.completions, judge, n_boot=b["n_boot"])
        comps = run.completions.assign(hit=[judge.hit(t) for t in run.completions["completion"]])
        for _, r in table.iterrows():
            row = {
                "concept": name,
                "judge": judge.name,
                "condition": r["method"],
                "success": r["success"],
                "success_low": r["success_low"],
                "success_high": r["success_high"],
                "perplexity_ratio": r["perplexity_ratio"],
                "perplexity_ratio_low": r["perplexity_ratio_low"],
                "perplexity_ratio_high": r["perplexity_ratio_high"],
            }
            scheme = r["method"]
            if scheme.startswith(("sum@", "own layers@", "compose (")):
                base = baseline_for(scheme, name)
                base_label = table.loc[table["method"] == base, "condition"].iloc[0]
                a, c = unit_arrays(comps, r["condition"]), unit_arrays(comps, base_label)
                iv = bootstrap_ci(
                    lambda h1, n1, h0, n0: h1.sum(1) / n1.sum(1) - h0.sum(1) / n0.sum(1),
                    a["hit"],
                    a["rows"],
                    c["hit"],
                    c["rows"],
                    n_boot=b["n_boot"],
                )
                row.update(baseline=base, minus_alone=iv.estimate, minus_alone_low=iv.low, minus_alone_high=iv.high)
            rows.append(row)
    result = pd.DataFrame(rows)
    d = figures_dir(directory)
    formats = ("html", "png", "svg") if static else ("html",)
    paths = {"table": str(save_table(result, d / "concepts_compose.csv"))}
    fig = composition_figure(
        result, title=f"Steering sentiment and French at once ({b['n_prompts']} prompts × {len(b['seeds'])} seeds)"
    )
    paths["figure"] = str(save_figure(fig, "concepts_compose", directory=d, formats=formats)["html"])
    lines = [
        "# Composition: sentiment (toward positive) and English → French at once",
        "",
        f"Shared layer {shared_layer}, own layers {own_layers} (sentiment, French), strengths {strengths} × ‖μ⁺ − μ⁻‖, "
        f"composed method {compose_method}; {b['n_prompts']} prompts × {len(b['seeds'])} seeds (T={temperature:g}), "
        f"{b['max_new_tokens']} tokens; judges VADER (sentiment) and py3langid (French). "
        "95 % bootstrap intervals over prompts.",
        "",
        "| condition | sentiment success | French success | sentiment − alone | French − alone | perplexity ratio |",
        "|---|---|---|---|---|---|",
    ]
    piv = {name: result[result["concept"] == name].set_index("condition") for name in CONCEPTS}
    for cond in piv["sentiment"].index:
        s, f = piv["sentiment"].loc[cond], piv["French"].loc[cond]
        lines.append(
            f"| {cond} | {interval_text(s, 'success')} | {interval_text(f, 'success')} | "
            f"{interval_text(s, 'minus_alone')} | {interval_text(f, 'minus_alone')} | "
            f"{interval_text(s, 'perplexity_ratio')} |"
        )
    lines += [
        "",
        "'− alone': the scheme's success minus the same concept steered alone (same layer / method), paired by prompt.",
    ]
    paths["report"] = str(save_text(d / "concepts_compose_report.md", "\n".join(lines) + "\n"))
    return {"table": result, "paths": paths, "timing": run.timing}


__all__ = ["BUDGETS", "baseline_for", "run_compose"]
