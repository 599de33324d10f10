"""The refusal study (issue §5), step one: the unsteered refusal rates.

Harmful and harmless requests in the instruct model's chat template, completed greedily and with
sampling (several seeds), judged by the refusal-substring detector of Arditi et al. (2024). If the
model refuses fewer than ``PROCEED_AT`` (20 %) of the harmful requests, there is no refusal behaviour
for steering to break: the study reports that and stops. Only rates are written
(``concepts_refusal_rates.csv``, ``concepts_refusal_summary.json``, ``concepts_refusal_report.md``,
a bar chart), never completions.
"""

from pathlib import Path
from typing import Union

import pandas as pd

from workbench.artifacts import save_json, save_table, save_text
from workbench.concepts.bakeoff import interval_text
from workbench.concepts.refusal import PROCEED_AT, REFUSAL_SUBSTRINGS, refusal_rates
from workbench.experiments.export import save_figure
from workbench.paths import figures_dir
from workbench.plots.concepts import refusal_figure

BUDGETS = {
    "full": dict(n=None, max_new_tokens=48, seeds=(0, 1, 2), n_boot=2000),
    "small": dict(n=4, max_new_tokens=8, seeds=(0,), n_boot=200),
}
KIND = "concepts_refusal_summary"


def run_refusal(
    model,
    *,
    budget: str = "full",
    temperature: float = 0.7,
    directory: Union[str, Path, None] = None,
    static: bool = True,
    progress: bool = True,
) -> dict:
    """Base refusal rates, greedy and sampled; the stop decision; files (rates only)."""
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    b = BUDGETS[budget]
    common = dict(n=b["n"], max_new_tokens=b["max_new_tokens"], n_boot=b["n_boot"], progress=progress)
    greedy, _ = refusal_rates(model, temperature=0.0, seeds=(0,), **common)
    sampled, _ = refusal_rates(model, temperature=temperature, seeds=b["seeds"], **common)
    rates = pd.concat([greedy.assign(decoding="greedy"), sampled.assign(decoding=f"sampled T={temperature:g}")])
    rates = rates.reset_index(drop=True)
    harmful = rates[(rates["requests"] == "harmful") & (rates["method"] == "none")]
    top = float(harmful["refusal_rate"].max())
    proceed = top >= PROCEED_AT
    d = figures_dir(directory)
    formats = ("html", "png", "svg") if static else ("html",)
    paths = {"rates": str(save_table(rates, d / "concepts_refusal_rates.csv"))}
    doc = {
        "judge": "refusal substrings (Arditi et al. 2024)",
        "substrings": list(REFUSAL_SUBSTRINGS),
        "proceed_at": PROCEED_AT,
        "proceed": proceed,
        "budget": {k: (list(v) if isinstance(v, tuple) else v) for k, v in b.items()},
        "rates": rates.to_dict(orient="records"),
    }
    paths["summary"] = str(save_json(d / "concepts_refusal_summary.json", doc, kind=KIND, version=1))
    fig = refusal_figure(rates, threshold=PROCEED_AT)
    paths["figure"] = str(save_figure(fig, "concepts_refusal_rates", directory=d, formats=formats)["html"])
    lines = [
        "# Refusal study: unsteered refusal rates",
        "",
        f"{int(harmful['n_prompts'].iloc[0])} harmful and as many harmless requests (chat template), "
        f"{b['max_new_tokens']} new tokens; judge: refusal substrings of Arditi et al. (2024); "
        "95 % bootstrap intervals over requests.",
        "",
        "| decoding | requests | refusal rate |",
        "|---|---|---|",
    ]
    for _, r in rates.iterrows():
        lines.append(f"| {r['decoding']} | {r['requests']} | {interval_text(r, 'refusal_rate')} |")
    lines += [
        "",
        (
            f"The model refuses at most {top:.1%} of the harmful requests, below the {PROCEED_AT:.0%} needed for a "
            "refusal study: there is no refusal behaviour for steering to remove, so the study stops here "
            "(no refusal direction, ablation or steering runs)."
            if not proceed
            else f"The model refuses {top:.1%} of the harmful requests: the study can proceed."
        ),
    ]
    paths["report"] = str(save_text(d / "concepts_refusal_report.md", "\n".join(lines) + "\n"))
    return {"rates": rates, "proceed": proceed, "paths": paths}


__all__ = ["BUDGETS", "run_refusal"]
