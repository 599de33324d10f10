import math

import pandas as pd
import pytest
import torch

from workbench.concepts.bakeoff import BakeoffConfig, summarize
from workbench.concepts.evaluate import Condition, run_conditions, steering_sweep
from workbench.concepts.judges import judge_for
from workbench.edits import AddVector
from workbench.likelihood import completion_nll


def test_completion_nll_matches_transformer_lens_loss(tiny):
    """run_conditions scores fluency with workbench.likelihood.completion_nll: per row the summed NLL
    of the completion tokens, as TransformerLens' own per-token loss gives it."""
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, 50, (n,), generator=g).tolist() for n in (3, 5)]
    comps = [torch.randint(0, 50, (n,), generator=g).tolist() for n in (4, 2)]
    sums, counts = completion_nll(tiny, [*prompts, [1, 2]], [*comps, []], batch_size=2)
    for nll, count, p, c in zip(sums, counts, prompts, comps):
        tokens = torch.tensor([p + c])
        per_token = tiny(tokens, return_type="loss", loss_per_token=True)[0]  # -log p(t_{i+1} | t_<=i)
        expect = float(per_token[len(p) - 1 :].sum())
        assert int(count) == len(c)
        assert float(nll) == pytest.approx(expect, rel=1e-4)
    assert float(sums[2]) == 0.0 and int(counts[2]) == 0  # an empty completion


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
    with pytest.raises(ValueError, match="positive strengths"):
        BakeoffConfig(grid=(float("nan"),))
    with pytest.raises(ValueError, match="toward"):
        BakeoffConfig(toward=("up",))
    with pytest.raises(ValueError, match="n_prompts"):
        BakeoffConfig(n_prompts=21)  # there are 20 neutral prompts
    with pytest.raises(TypeError, match="n_train"):
        BakeoffConfig(n_train=2.5)
    with pytest.raises(ValueError, match="reduce"):
        BakeoffConfig(reduce="max")
    with pytest.raises(ValueError, match="budget"):
        BakeoffConfig.for_budget("huge")
    small = BakeoffConfig.for_budget("small", concept="topic_food")
    assert small.concept == "topic_food" and small.n_prompts <= 4
    assert BakeoffConfig.small(layer=3) == BakeoffConfig.for_budget("small", layer=3)
    assert BakeoffConfig(methods=["ace", "logistic"]).methods == ("ace", "logistic")  # lists become tuples


def test_bakeoff_budget_is_explicit_not_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("WORKBENCH_BUDGET", "small")
    assert BakeoffConfig.for_budget() == BakeoffConfig()  # the default budget is "full", whatever the env says


def test_run_conditions_and_sweep_validate_before_generating(tiny):
    judge = judge_for("sentiment")
    cond = [Condition("x", "positive", 1.0, AddVector(torch.ones(tiny.cfg.d_model), 1.0))]
    with pytest.raises(TypeError, match="prompts"):
        run_conditions(tiny, "resid_post.0", cond, "Yesterday I", judge)  # a bare string is not a list
    with pytest.raises(ValueError, match="max_new_tokens"):
        run_conditions(tiny, "resid_post.0", cond, ["Yesterday I"], judge, max_new_tokens=0)
    with pytest.raises(TypeError, match="Condition"):
        run_conditions(tiny, "resid_post.0", [object()], ["Yesterday I"], judge)
    with pytest.raises(ValueError, match="at least one ConceptVector"):
        steering_sweep(tiny, [], [1.0], concept="sentiment")


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
    _, comps_alone = run_conditions(
        embedded, "resid_post.4", [strong], prompts, judge, max_new_tokens=3, progress=False, max_rows=2
    )  # one condition per generate call
    assert list(comps["completion"]) == list(comps_alone["completion"])
    assert math.isfinite(base["perplexity"]) and set(together.columns) >= {"success", "perplexity", "kl", "distinct"}
