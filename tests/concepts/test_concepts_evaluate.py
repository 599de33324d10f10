import math

import pandas as pd
import pytest
import torch

from workbench.concepts.bakeoff import BakeoffConfig, summarize
from workbench.concepts.evaluate import Condition, completion_nll, run_conditions
from workbench.concepts.judges import judge_for
from workbench.edits import AddVector


def test_completion_nll_matches_transformer_lens_loss(tiny):
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, 50, (n,), generator=g).tolist() for n in (3, 5)]
    comps = [torch.randint(0, 50, (n,), generator=g).tolist() for n in (4, 2)]
    got = completion_nll(tiny, prompts, comps + [], batch_size=2)
    for (nll, count), p, c in zip(got, prompts, comps):
        tokens = torch.tensor([p + c])
        per_token = tiny(tokens, return_type="loss", loss_per_token=True)[0]  # -log p(t_{i+1} | t_<=i)
        expect = float(per_token[len(p) - 1 :].sum())
        assert count == len(c)
        assert nll == pytest.approx(expect, rel=1e-4)
    assert completion_nll(tiny, [[1, 2]], [[]]) == [(0.0, 0)]


def _table(rows):
    return pd.DataFrame(rows, columns=["method", "toward", "strength", "success", "perplexity_ratio", "kl"])


def test_summarize_respects_the_fluency_limit_and_names_the_winner():
    t = _table(
        [
            ["none", "none", 0, 0.5, 1.0, 0.0],
            ["a", "positive", 4, 0.9, 1.5, 0.1],
            ["a", "positive", 8, 1.0, 3.0, 0.5],
            ["a", "negative", 4, 0.2, 1.4, 0.1],
            ["a", "negative", 8, 0.0, 2.5, 0.4],
            ["b", "positive", 4, 0.7, 1.1, 0.1],
            ["b", "positive", 8, 0.95, 1.9, 0.3],
            ["b", "negative", 4, 0.3, 1.1, 0.1],
            ["b", "negative", 8, 0.1, 1.8, 0.3],
        ]
    )
    summary, winner = summarize(t, max_ratio=2.0)
    a = summary.set_index("method").loc["a"]
    assert a["positive_success"] == 0.9 and a["positive_strength"] == 4  # 1.0 needs 3× perplexity
    assert a["positive_success_any_ppl"] == 1.0
    b = summary.set_index("method").loc["b"]
    assert b["controllable_range"] == pytest.approx(0.85) and a["controllable_range"] == pytest.approx(0.7)
    assert winner == "b"


def test_bakeoff_config_validates():
    with pytest.raises(ValueError, match="unknown methods"):
        BakeoffConfig(methods=("magic",))
    with pytest.raises(ValueError, match="positive strengths"):
        BakeoffConfig(grid=(0.0,))
    with pytest.raises(ValueError, match="toward"):
        BakeoffConfig(toward=("up",))
    with pytest.raises(ValueError, match="budget"):
        BakeoffConfig.for_budget("huge")
    small = BakeoffConfig.for_budget("small", concept="topic_food")
    assert small.concept == "topic_food" and small.n_prompts <= 4


@pytest.mark.embedded
def test_run_conditions_is_consistent(embedded):
    """The unsteered condition has KL 0 and perplexity ratio 1; a condition's completions are the same
    whether it runs alone or side by side with others; a strong push changes the next-token distribution."""
    prompts = ["Yesterday I", "The letter said"]
    judge = judge_for("sentiment")
    v = torch.randn(embedded.cfg.d_model, generator=torch.Generator().manual_seed(0))
    strong = Condition("rand", "positive", 1.0, AddVector(v / v.norm() * 40, 1.0))
    together, comps = run_conditions(
        embedded, "resid_post.4", [strong], prompts, judge, max_new_tokens=3, progress=False
    )
    base = together[together["method"] == "none"].iloc[0]
    assert base["kl"] == pytest.approx(0.0, abs=1e-6) and base["perplexity_ratio"] == pytest.approx(1.0)
    assert together.loc[together["method"] == "rand", "kl"].item() > 0.01
    alone, comps_alone = run_conditions(
        embedded, "resid_post.4", [strong], prompts, judge, max_new_tokens=3, progress=False, max_rows=2
    )  # one condition per generate call
    assert list(comps["completion"]) == list(comps_alone["completion"])
    assert math.isfinite(base["perplexity"]) and set(together.columns) >= {"success", "perplexity", "kl", "distinct"}
