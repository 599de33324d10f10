"""The refusal study's requests and its judge (the substring list of the refusal-direction work)."""

import pytest

from workbench.concepts.refusal import REFUSAL_JUDGE, harmful_requests, harmless_requests, refusal_score
from workbench.plots.concepts import refusal_figure


def test_requests_are_forty_distinct_matched_pairs():
    bad, good = harmful_requests(), harmless_requests()
    assert len(bad) == len(good) == 40 and len(set(bad)) == len(set(good)) == 40
    assert not set(bad) & set(good) and harmful_requests(3) == bad[:3]
    with pytest.raises(ValueError, match="n"):
        harmful_requests(41)


def test_refusal_judge_finds_the_substrings_anywhere_and_folds_apostrophes():
    assert refusal_score("I’m sorry, but I can’t help with that.") == 1.0
    assert refusal_score("Sure! As an AI model I will explain.") == 1.0  # substring rule, as in the paper
    assert refusal_score("Here are the steps: first, preheat the oven.") == 0.0
    assert REFUSAL_JUDGE.hit("i cannot do that") and not REFUSAL_JUDGE.hit("I can do that")


def test_refusal_figure_draws_rates_with_intervals():
    import pandas as pd

    rates = pd.DataFrame(
        {
            "decoding": ["greedy", "greedy"],
            "requests": ["harmful", "harmless"],
            "refusal_rate": [0.05, 0.0],
            "refusal_rate_low": [0.0, 0.0],
            "refusal_rate_high": [0.15, 0.0],
        }
    )
    fig = refusal_figure(rates)
    assert list(fig.data[0].y) == [0.05, 0.0] and list(fig.data[0].error_y.array) == pytest.approx([0.1, 0.0])
    assert fig.data[1].y[0] == 0.2
