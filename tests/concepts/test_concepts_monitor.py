"""The monitor: per-token projections read before the steer equal the unsteered model's reading of the
generated text (run_with_cache), and its correlation with a judge is Pearson's r (scipy) with a
prompt bootstrap."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import pearsonr

from workbench.concepts.monitor import Monitored, monitor_correlation, monitor_table, monitored_generate, project


def test_monitor_correlation_is_pearson_with_a_prompt_bootstrap():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    y = 0.6 * x + rng.normal(size=(30, 3))
    table = pd.DataFrame(
        {
            "prompt_index": np.repeat(np.arange(30), 3),
            "seed": np.tile([0, 1, 2], 30),
            "mean_projection": x.ravel(),
            "score": y.ravel(),
        }
    )
    iv = monitor_correlation(table.sample(frac=1.0, random_state=1), n_boot=500)  # row order does not matter
    assert iv.estimate == pytest.approx(pearsonr(x.ravel(), y.ravel()).statistic)
    assert iv.low < iv.estimate < iv.high and iv.n_units == 30
    with pytest.raises(ValueError, match="same number"):
        monitor_correlation(table.iloc[1:])
    m = Monitored("unsteered", "p", " a b", (" a", " b"), (1.0, 3.0))
    row = monitor_table([m]).iloc[0]
    assert row["mean_projection"] == 2.0 and row["first_projection"] == 1.0 and row["n_tokens"] == 2


@pytest.mark.embedded
def test_monitor_reads_the_text_not_the_push(embedded):
    from workbench.concepts import extract, fit_vector, load_concept, steering_edit
    from workbench.sites import Site

    site = Site(6, "resid_post")
    data = load_concept("sentiment").train.head(16)
    acts = extract(embedded, data.texts, site, "mean", progress=False)[site.short]
    vec = fit_vector("mean_diff", site, acts[:16], acts[16:], concept="sentiment")
    prompts = ["Yesterday I", "The letter said that"]
    got = monitored_generate(
        embedded,
        prompts,
        vec,
        conditions={"unsteered": None, "up": steering_edit(vec, 8.0, "positive")},
        max_new_tokens=5,
    )
    assert [m.condition for m in got] == ["unsteered", "unsteered", "up", "up"]
    for m in got:
        # the state at the steering site before the edit is the unsteered model's state on the same tokens
        ids = embedded.tokenizer(m.prompt + m.completion, add_special_tokens=False)["input_ids"]
        p = len(embedded.tokenizer(m.prompt, add_special_tokens=False)["input_ids"])
        _, cache = embedded.run_with_cache(torch.tensor([ids]), names_filter=site.hook_name)
        ref = project(vec, cache[site.hook_name][0, p - 1 : p - 1 + len(m.projections)])
        assert len(m.projections) == len(m.tokens) >= 1
        assert torch.allclose(torch.tensor(m.projections, dtype=torch.float64), ref, atol=2e-2, rtol=1e-3)
    up = np.mean([m.mean_projection for m in got if m.condition == "up"])
    plain = np.mean([m.mean_projection for m in got if m.condition == "unsteered"])
    assert np.isfinite(up) and np.isfinite(plain)
