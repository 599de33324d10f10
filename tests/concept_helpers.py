"""A synthetic steering-sweep table and bake-off result (the columns steering_sweep returns), for
figure and file tests that need no model."""

import numpy as np
import pandas as pd

from workbench.concepts.bakeoff import BakeoffConfig, BakeoffResult, summarize


def sweep_table(methods=("mean_diff", "ace"), grid=(2.0, 8.0), seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [dict(method="none", toward="none", strength=0.0, success=0.5, perplexity_ratio=1.0, kl=0.0)]
    for m in methods:
        for t in ("positive", "negative"):
            for s in grid:
                rows.append(
                    dict(
                        method=m,
                        toward=t,
                        strength=s,
                        success=float(rng.uniform()),
                        perplexity_ratio=float(1 + s * rng.uniform(0.05, 0.4)),
                        kl=float(s * rng.uniform(0.01, 0.1)),
                    )
                )
    table = pd.DataFrame(rows)
    table["condition"] = [f"{m}:{t}:{s:g}" for m, t, s in zip(table["method"], table["toward"], table["strength"])]
    table["perplexity"] = 4.0 * table["perplexity_ratio"]
    table.insert(0, "concept", "sentiment")
    table.insert(1, "site", "resid_post.8")
    return table


def bakeoff_result(methods=("mean_diff", "ace")) -> BakeoffResult:
    table = sweep_table(methods)
    completions = pd.DataFrame(
        {"condition": table["condition"], "prompt": "Yesterday I", "completion": " went home.", "hit": True}
    )
    summary, winner = summarize(table)
    return BakeoffResult(BakeoffConfig.small(methods=methods), table, completions, summary, winner, 1.5)
