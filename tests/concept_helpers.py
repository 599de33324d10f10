"""A synthetic completions table (the columns run_conditions returns), the condition table computed
from it, and a bake-off result, for summary, figure and file tests that need no model."""

import numpy as np
import pandas as pd

from workbench.concepts.bakeoff import BakeoffConfig, BakeoffResult, summarize
from workbench.concepts.evaluate import condition_table


def completions_table(
    methods=("mean_diff", "ace"),
    grid=(2.0, 8.0),
    *,
    n_prompts=6,
    seeds=(0, 1),
    control_draws=0,
    rates=None,
    seed=0,
) -> pd.DataFrame:
    """One row per (condition, draw, seed, prompt). ``rates[(method, toward, strength)]`` sets a
    condition's hit probability (default random); perplexity and KL grow with strength."""
    rng = np.random.default_rng(seed)
    conds = [("none", "none", 0.0, -1)]
    for m in methods:
        conds += [(m, t, s, -1) for t in ("positive", "negative") for s in grid]
    conds += [("random", t, s, k) for k in range(control_draws) for t in ("positive", "negative") for s in grid]
    rows = []
    for m, t, s, k in conds:
        p = (rates or {}).get((m, t, s), 0.5 if m == "none" else float(rng.uniform(0.05, 0.95)))
        for sd in seeds:
            for j in range(n_prompts):
                n_tok = int(rng.integers(4, 9))
                rows.append(
                    dict(
                        condition="unsteered" if m == "none" else f"{m}:{t}:{s:g}",
                        method=m,
                        toward=t,
                        strength=s,
                        draw=k,
                        seed=sd,
                        prompt_index=j,
                        prompt=f"prompt {j}",
                        completion=" went home.",
                        nll_sum=float(n_tok * (1.5 + 0.05 * s + rng.uniform(0, 0.5))),
                        n_tokens=n_tok,
                        distinct=float(rng.uniform(0.6, 1.0)),
                        distinct_2=float(rng.uniform(0.7, 1.0)),
                        score=float(rng.normal()),
                        hit=bool(rng.uniform() < p),
                        kl=0.0 if m == "none" else float(0.02 * s * (1 + 0.1 * j)),
                        judge="vader",
                    )
                )
    return pd.DataFrame(rows)


def sweep_table(methods=("mean_diff", "ace"), grid=(2.0, 8.0), seed=0, **kwargs) -> pd.DataFrame:
    table = condition_table(completions_table(methods, grid, seed=seed, **kwargs), n_boot=200)
    table.insert(0, "concept", "sentiment")
    table.insert(1, "site", "resid_post.8")
    return table


def bakeoff_result(methods=("mean_diff", "ace"), **kwargs) -> BakeoffResult:
    completions = completions_table(methods, **kwargs)
    table = condition_table(completions, n_boot=200)
    table.insert(0, "concept", "sentiment")
    table.insert(1, "site", "resid_post.8")
    summary, winners = summarize(table, completions, n_boot=200)
    return BakeoffResult(
        BakeoffConfig.small(methods=methods), table, completions, summary, winners["range"], 1.5, {}, winners
    )


def ctx_for(acts):
    """An EditContext selecting every position of ``acts`` ``[batch, pos, d]`` (a prompt pass)."""
    import torch

    from workbench.edits import EditContext
    from workbench.sites import Site

    b, p = acts.shape[0], acts.shape[1]
    return EditContext(
        Site(0, "resid_post"),
        torch.ones(b, p, dtype=torch.bool),
        torch.arange(p).expand(b, p),
        torch.full((b,), p),
        torch.full((b,), p),
        0,
    )
