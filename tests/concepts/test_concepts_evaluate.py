import math

import numpy as np
import pandas as pd
import pytest
import torch
from concept_helpers import completions_table

from workbench.concepts.bakeoff import NO_CLEAR_WINNER, BakeoffConfig, summarize
from workbench.concepts.evaluate import Condition, condition_table, run_conditions, steering_sweep
from workbench.concepts.judges import judge_for
from workbench.concepts.stats import bootstrap_ci, resample_indices
from workbench.edits import AddVector
from workbench.likelihood import completion_nll
from workbench.prompts import neutral_prompts
from workbench.registry import HookRegistry


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


def test_summarize_respects_the_fluency_limit_and_without_intervals_names_no_winner():
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
    summary, winners = summarize(t, max_ratio=2.0)
    a = summary.set_index("method").loc["a"]
    assert a["positive_success"] == 0.9 and a["positive_strength"] == 4  # 1.0 needs 3× perplexity
    assert a["positive_success_any_ppl"] == 1.0
    b = summary.set_index("method").loc["b"]
    assert b["controllable_range"] == pytest.approx(0.85) and a["controllable_range"] == pytest.approx(0.7)
    assert list(summary["method"]) == ["b", "a"]  # sorted by range
    assert winners["range"] == NO_CLEAR_WINNER  # no intervals, no claim


def test_condition_table_equals_a_brute_force_prompt_bootstrap():
    comps = completions_table(n_prompts=9, seeds=(0, 1, 2), control_draws=2, seed=4)
    table = condition_table(comps, n_boot=150, seed=5).set_index("condition")
    idx = resample_indices(9, 150, 5)
    for label in ("mean_diff:positive:8", "random:negative:2"):
        sub, base = comps[comps["condition"] == label], comps[comps["condition"] == "unsteered"]
        row = table.loc[label]
        assert row["success"] == pytest.approx(sub["hit"].mean())
        assert row["n"] == len(sub) and row["n_seeds"] == 3 and row["n_prompts"] == 9
        ppl = lambda d: math.exp(d["nll_sum"].sum() / d["n_tokens"].sum())
        assert row["perplexity_ratio"] == pytest.approx(ppl(sub) / ppl(base))
        assert row["kl"] == pytest.approx(sub.groupby("prompt_index")["kl"].first().mean())
        # brute force: rebuild each resample as a data frame of the drawn prompts (repeats kept)
        ratios, shares = [], []
        by_s, by_b = dict(list(sub.groupby("prompt_index"))), dict(list(base.groupby("prompt_index")))
        for draw in idx:
            s = pd.concat([by_s[j] for j in draw])
            b = pd.concat([by_b[j] for j in draw])
            ratios.append(ppl(s) / ppl(b))
            shares.append(s["hit"].mean())
        assert (row["perplexity_ratio_low"], row["perplexity_ratio_high"]) == pytest.approx(
            tuple(np.percentile(ratios, [2.5, 97.5]))
        )
        assert (row["success_low"], row["success_high"]) == pytest.approx(tuple(np.percentile(shares, [2.5, 97.5])))
    assert table.loc["random:negative:2", "n_draws"] == 2
    with pytest.raises(ValueError, match="unsteered"):
        condition_table(comps[comps["condition"] != "unsteered"])
    with pytest.raises(ValueError, match="same prompts"):
        condition_table(comps[~((comps["condition"] == "ace:positive:2") & (comps["prompt_index"] == 0))])


def _rates(a_pos, a_neg, b_pos, b_neg):
    return {
        ("a", "positive", 8.0): a_pos,
        ("a", "negative", 8.0): a_neg,
        ("b", "positive", 8.0): b_pos,
        ("b", "negative", 8.0): b_neg,
    }


def test_winner_rule_needs_separated_intervals():
    kw = dict(grid=(8.0,), n_prompts=40, seeds=(0, 1, 2), control_draws=2)
    comps = completions_table(("a", "b"), rates=_rates(0.95, 0.05, 0.6, 0.4), seed=1, **kw)
    table = condition_table(comps, n_boot=500)
    summary, winners = summarize(table, comps, n_boot=500)
    s = summary.set_index("method")
    assert winners == {"range": "a", "positive": "a", "negative": "a"}
    assert s.loc["a", "controllable_range_low"] > s.loc["b", "controllable_range_high"]
    assert bool(s.loc["random", "is_control"]) and list(summary["method"])[-1] == "random"  # never wins
    assert bool(s.loc["a", "positive_beats_control"])
    # the range interval is the paired bootstrap of the difference of the two picked conditions
    iv = bootstrap_ci(
        lambda h1, h0: h1.mean(1) - h0.mean(1),
        comps[comps["condition"] == "a:positive:8"].groupby("prompt_index")["hit"].mean(),
        comps[comps["condition"] == "a:negative:8"].groupby("prompt_index")["hit"].mean(),
        n_boot=500,
    )
    assert (s.loc["a", "controllable_range_low"], s.loc["a", "controllable_range_high"]) == pytest.approx(
        (iv.low, iv.high)
    )
    close = completions_table(("a", "b"), rates=_rates(0.8, 0.2, 0.78, 0.22), seed=2, **kw)
    _, winners = summarize(condition_table(close, n_boot=500), close, n_boot=500)
    assert winners["range"] == NO_CLEAR_WINNER


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
        BakeoffConfig(n_prompts=len(neutral_prompts()) + 1)
    with pytest.raises(ValueError, match="greedy"):
        BakeoffConfig(temperature=0.0, seeds=(0, 1))
    with pytest.raises(ValueError, match="distinct"):
        BakeoffConfig(seeds=(1, 1))
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
    whether it runs alone or side by side with others; a strong push changes the next-token
    distribution; a condition editing two sites equals the two steers registered by hand; sampled
    seeds differ from each other and repeat exactly."""
    prompts = ["Yesterday I", "The letter said"]
    judge = judge_for("sentiment")
    g = torch.Generator().manual_seed(0)
    v, w = (torch.randn(embedded.cfg.d_model, generator=g) for _ in range(2))
    strong = Condition("rand", "positive", 1.0, AddVector(v / v.norm() * 40, 1.0))
    two = Condition(
        "two", "positive", 1.0, {"resid_post.2": AddVector(w / w.norm() * 20, 1.0), "resid_post.4": strong.edit}
    )
    run = run_conditions(embedded, "resid_post.4", [strong, two], prompts, judge, max_new_tokens=3, progress=False)
    together, comps = run.table, run.completions
    base = together[together["method"] == "none"].iloc[0]
    assert base["kl"] == pytest.approx(0.0, abs=1e-6) and base["perplexity_ratio"] == pytest.approx(1.0)
    assert base["perplexity_ratio_low"] == pytest.approx(1.0) and base["perplexity_ratio_high"] == pytest.approx(1.0)
    assert together.loc[together["method"] == "rand", "kl"].item() > 0.01
    assert run.timing.decode_tokens == 3 * 3 * len(prompts) and run.timing.tokens_per_second > 0
    alone = run_conditions(
        embedded, "resid_post.4", [strong, two], prompts, judge, max_new_tokens=3, progress=False, max_rows=2
    )  # one condition per generate call
    assert list(comps["completion"]) == list(alone.completions["completion"])
    reg = HookRegistry(embedded)
    reg.steer("a", "resid_post.2", two.edit["resid_post.2"]).steer("b", "resid_post.4", two.edit["resid_post.4"])
    by_hand = reg.generate(prompts, max_new_tokens=3)
    assert list(comps.loc[comps["method"] == "two", "completion"]) == by_hand.completions
    assert math.isfinite(base["perplexity"]) and set(together.columns) >= {"success", "perplexity", "kl", "distinct"}
    sampled = dict(max_new_tokens=6, temperature=1.0, seeds=(0, 1), progress=False)
    once = run_conditions(embedded, "resid_post.4", [strong], prompts, judge, **sampled).completions
    again = run_conditions(embedded, "resid_post.4", [strong], prompts, judge, **sampled).completions
    assert list(once["completion"]) == list(again["completion"])
    by_seed = once[once["method"] == "none"].groupby("seed")["completion"].apply(list)
    assert by_seed[0] != by_seed[1]
