"""Real text, held out (issue §2): template-written sentiment against VADER's human-rated sentences.

1. **Probe transfer by layer** (``concepts.transfer``): logistic probes trained on one source's
   training split, scored on each source's held-out split (template → template, template → real,
   real → real, real → template), for mean-pooled and last-token activations.
2. **Vectors**: cosine by layer between the template and the real-text mean-difference vectors and
   probe normals.
3. **Steering**: the same bake-off (methods, layer, grid, prompts, seeds) with vectors fitted on each
   source; success with bootstrap intervals.

Writes ``concepts_realtext_*`` tables (CSV), figures and a Markdown report under the figures folder.
"""

from pathlib import Path
from typing import Optional, Union

import pandas as pd

from workbench.artifacts import save_table, save_text
from workbench.concepts.bakeoff import BakeoffConfig, interval_text, run_bakeoff
from workbench.concepts.realtext import REAL_CONCEPT
from workbench.concepts.transfer import source_activations, transfer_sweep, vector_cosines
from workbench.experiments.export import save_figure
from workbench.paths import figures_dir
from workbench.plots.concepts import cosine_figure, method_label, source_comparison_figure, transfer_figure

TEMPLATE = "sentiment"
BUDGETS = {
    "full": dict(layers=tuple(range(0, 30, 2)), n_train=400, n_test=150, bakeoff={}),
    "small": dict(layers=(0, 4, 8), n_train=24, n_test=12, bakeoff=dict(n_prompts=4, max_new_tokens=8, grid=(8.0,))),
}


def run_realtext(
    model,
    *,
    budget: str = "full",
    layer: int = 6,
    methods: tuple[str, ...] = ("mean_diff", "logistic"),
    directory: Union[str, Path, None] = None,
    static: bool = True,
    progress: bool = True,
) -> dict:
    """Run the three comparisons and write their files; returns the tables and the paths."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    b = BUDGETS[budget]
    d = figures_dir(directory)
    out: dict = {"paths": {}}
    sweeps, cosines = [], []
    for reduce in ("mean", "last"):
        acts = source_activations(
            model,
            (TEMPLATE, REAL_CONCEPT),
            b["layers"],
            reduce=reduce,
            n_train=b["n_train"],
            n_test=b["n_test"],
            progress=progress,
        )
        sweeps.append(transfer_sweep(acts).assign(reduce=reduce))
        cosines.append(vector_cosines(acts, TEMPLATE, REAL_CONCEPT).assign(reduce=reduce))
    sweep, cos = pd.concat(sweeps, ignore_index=True), pd.concat(cosines, ignore_index=True)
    out["sweep"], out["cosines"] = sweep, cos
    out["paths"]["sweep"] = str(save_table(sweep, d / "concepts_realtext_probe_transfer.csv"))
    out["paths"]["cosines"] = str(save_table(cos, d / "concepts_realtext_vector_cosines.csv"))
    formats = ("html", "png", "svg") if static else ("html",)
    for reduce in ("mean", "last"):
        fig = transfer_figure(
            sweep[sweep["reduce"] == reduce],
            title=f"Sentiment probes across data sources ({reduce}-token activations, held-out accuracy)",
        )
        out["paths"][f"transfer_{reduce}"] = str(
            save_figure(fig, f"concepts_realtext_probe_transfer_{reduce}", directory=d, formats=formats)["html"]
        )
    fig = cosine_figure(cos[cos["reduce"] == "mean"], title="Template vs real-text sentiment directions (mean-pooled)")
    out["paths"]["cosine_figure"] = str(
        save_figure(fig, "concepts_realtext_vector_cosines", directory=d, formats=formats)["html"]
    )
    results = {}
    for concept in (TEMPLATE, REAL_CONCEPT):
        config = BakeoffConfig.for_budget(
            budget, concept=concept, layer=layer, methods=methods, controls=0, **b["bakeoff"]
        )
        results[concept] = run_bakeoff(model, config, progress=progress)
    tables = {name: r.table.assign(vector_source=name) for name, r in results.items()}
    both = pd.concat(tables.values(), ignore_index=True)
    out["bakeoffs"] = results
    out["paths"]["bakeoff"] = str(save_table(both, d / "concepts_realtext_bakeoff.csv"))
    fig = source_comparison_figure(
        {"template vectors": tables[TEMPLATE], "real-text vectors": tables[REAL_CONCEPT]},
        title=f"Sentiment steering at resid_post.{layer}: vectors from template vs real text (VADER judge)",
    )
    out["paths"]["bakeoff_figure"] = str(
        save_figure(fig, "concepts_realtext_bakeoff", directory=d, formats=formats)["html"]
    )
    out["paths"]["report"] = str(save_text(d / "concepts_realtext_report.md", report_markdown(sweep, cos, results)))
    return out


def report_markdown(sweep: pd.DataFrame, cos: pd.DataFrame, results: Optional[dict] = None) -> str:
    """Accuracy by layer for each train→test pair, cosines by layer, and the steering comparison."""
    lines = ["# Real text, held out: template vs human-rated sentiment", ""]
    for reduce in ("mean", "last"):
        sub = sweep[sweep["reduce"] == reduce]
        if sub.empty:
            continue
        piv = sub.pivot_table(index="layer", columns=["train_on", "test_on"], values="test_accuracy")
        lines += [f"## Held-out probe accuracy ({reduce}-token activations)", ""]
        cols = list(piv.columns)
        lines.append("| layer | " + " | ".join(f"{a} → {b}" for a, b in cols) + " |")
        lines.append("|---" * (len(cols) + 1) + "|")
        for layer, row in piv.iterrows():
            lines.append(f"| {layer} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + " |")
        n_test = sub.groupby("test_on")["n_test"].first().to_dict()
        lines += ["", f"Held-out texts: {n_test}.", ""]
    lines += [
        "## Cosine between template and real-text directions",
        "",
        "| layer | reduce | mean difference | probe normal |",
        "|---|---|---|---|",
    ]
    for _, r in cos.sort_values(["reduce", "layer"]).iterrows():
        lines.append(f"| {r['layer']} | {r['reduce']} | {r['mean_diff_cosine']:.3f} | {r['probe_cosine']:.3f} |")
    if results:
        lines += ["", "## Steering success (VADER-positive share; 95 % bootstrap intervals over prompts)", ""]
        lengths = []
        for name, r in results.items():
            v = next(iter(r.vectors.values()))
            lengths.append(f"{name} ‖μ⁺ − μ⁻‖ = {v.params['mean_diff_norm']:.2f}")
        lines += [
            "Strengths are in units of each source's own push length (" + "; ".join(lengths) + ").",
            "",
        ]
        lines += [
            "| vectors from | method | toward | strength | success | perplexity ratio |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in results.items():
            for _, row in r.table.iterrows():
                method = "unsteered" if row["method"] == "none" else method_label(row["method"])
                lines.append(
                    f"| {name} | {method} | {row['toward']} | {row['strength']:g} | {interval_text(row, 'success')} | "
                    f"{interval_text(row, 'perplexity_ratio')} |"
                )
    return "\n".join(lines) + "\n"


__all__ = ["BUDGETS", "report_markdown", "run_realtext"]
