"""The replication experiment's parts: generation success, perplexity, co-occurrence, groups, summary, replot."""

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from workbench.experiments.sae_replication import (
    FILTERED,
    GROUPS,
    HIGH,
    LOW,
    RANDOM,
    ReplicationConfig,
    cooccurrence,
    generated_nll,
    pick_groups,
    pooled_steering,
    replot,
    summarise_steering,
)
from workbench.plots.sae import steering_figure
from workbench.registry import Generation
from workbench.sae.steering import generation_success


def test_generation_success_counts_masked_tokens_in_each_rows_lens_tokens():
    new = torch.tensor([[5, 6, 7, 8], [1, 1, 2, 0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    top = torch.tensor([[6, 8, 9], [1, 3, 4]])
    # row 0: tokens 5 6 7 (8 masked) -> 1 of 3; row 1: 1 1 2 0 -> 2 of 4
    assert generation_success(new, mask, top).tolist() == pytest.approx([1 / 3, 2 / 4])


def test_generated_nll_is_the_mean_over_new_unpadded_tokens_by_hand(tiny):
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50, (3, 7), generator=g)
    mask = torch.ones_like(tokens)
    mask[0, :2] = 0  # left padding in the prompt
    mask[2, 6] = 0  # a finished row
    gen = Generation(tokens, mask, torch.tensor([2, 4, 4]), tokens[:, 4:], ["", "", ""], ["", "", ""])
    got = generated_nll(tiny, gen, batch_size=2)
    for b in range(3):
        keep = mask[b].bool()
        row = tokens[b][keep]
        logp = tiny(row[None]).log_softmax(-1)[0]
        start = 4 - int((~keep[:4]).sum())
        n = int(mask[b, 4:].sum())
        nll = [-logp[start + j - 1, row[start + j]].item() for j in range(n)]
        assert got[b].item() == pytest.approx(sum(nll) / n, abs=1e-4)


def _table(n=200, seed=0, dependent=False):
    rng = np.random.default_rng(seed)
    s_in = rng.uniform(0, 1, n)
    s_out = rng.uniform(0, 0.2, n) if not dependent else 0.2 * s_in
    return pd.DataFrame(
        {
            "feature": range(n),
            "input_score": s_in,
            "output_score": s_out,
            "n_examples": 50,
            "max_activation": 1.0,
            "top_tokens": [["a"]] * n,
        }
    )


def test_cooccurrence_by_hand():
    t = pd.DataFrame(
        {
            "feature": range(10),
            "input_score": [0.9, 0.8, 0.1, 0.2, 0.6, 0.0, 0.1, 0.3, 0.9, 0.0],
            "output_score": [0.01, 0.02, 0.5, 0.4, 0.03, 0.02, 0.01, 0.9, 0.02, 0.03],
            "n_examples": 20,
        }
    )
    c = cooccurrence(t, input_threshold=0.5, output_quantile=0.8)
    # top-20 % output threshold = quantile(0.8) of the outputs; features 7 (0.9) and 2 (0.5) are above it
    assert c["share_high_input"] == pytest.approx(0.4)
    assert c["share_high_output"] == pytest.approx(0.2)
    assert c["share_both_observed"] == 0.0 and c["share_both_if_independent"] == pytest.approx(0.08)
    dep = cooccurrence(_table(dependent=True))
    assert dep["spearman_rho"] == pytest.approx(1.0) and dep["observed_over_independent"] > 1


def test_pick_groups_high_low_random():
    t = _table(60)
    t.loc[:4, "n_examples"] = 2  # too few examples: never chosen
    groups = pick_groups(t, 5, min_examples=10, filter_threshold=0.1, seed=1)
    eligible = t[t["n_examples"] >= 10].sort_values("output_score", ascending=False)
    assert groups[HIGH] == eligible["feature"].head(5).tolist()
    assert groups[LOW] == eligible["feature"].tail(5).tolist()
    for g in (RANDOM, FILTERED):
        assert len(set(groups[g])) == 5 and set(groups[g]) <= set(eligible["feature"])
    assert (t.set_index("feature").loc[groups[FILTERED], "output_score"] >= 0.1).all()
    with pytest.raises(ValueError, match="need 300"):
        pick_groups(t, 100)
    with pytest.raises(ValueError, match=r"S_out >= 0.5"):
        pick_groups(t, 5, filter_threshold=0.5)


def _steering_rows():
    rows = []
    for group, succ, base in zip(GROUPS, (0.6, 0.4, 0.2, 0.1), (0.1, 0.2, 0.0, 0.05)):
        for f in range(2):
            for p in range(2):
                feature = f + 10 * GROUPS.index(group)
                for strength, value in ((0.0, base), (4.0, succ + (0.1 if f else -0.1))):
                    rows.append(
                        {
                            "layer": "L6",
                            "group": group,
                            "feature": feature,
                            "strength": strength,
                            "prompt": str(p),
                            "success": value,
                            "nll": math.log(5.0),
                            "n_tokens": 4,
                        }
                    )
    return pd.DataFrame(rows)


def test_summary_ratios_and_lift_by_hand():
    rows = _steering_rows()
    s = summarise_steering(rows)
    hi = s[(s["group"] == HIGH) & (s["strength"] == 4.0)].iloc[0]
    assert hi["success"] == pytest.approx(0.6) and hi["lift"] == pytest.approx(0.5)
    assert hi["ratio_high_over_random"] == pytest.approx(3.0) and hi["ratio_high_over_low"] == pytest.approx(6.0)
    assert hi["ratio_filtered_over_random"] == pytest.approx(2.0)
    # lifts: high 0.5, filtered 0.2, random 0.2, low 0.05
    assert hi["lift_ratio_filtered_over_random"] == pytest.approx(1.0) and hi[
        "lift_ratio_high_over_low"
    ] == pytest.approx(10.0)
    assert hi["perplexity_median"] == pytest.approx(5.0)
    pooled = pooled_steering(rows)
    assert pooled["lift"][HIGH] == pytest.approx(0.5) and pooled["success_ratio_high_over_random"] == pytest.approx(3.0)
    assert isinstance(steering_figure(s), go.Figure)


def test_replot_resummarises_saved_rows_and_drops_stale_keys(tmp_path):
    import json

    from workbench.sae.tables import load_score_table, save_score_table

    t = _table(seed=3)
    t["top_tokens"] = [["a", "b"]] * len(t)
    save_score_table(t, tmp_path / "scores_sae6.csv")
    assert load_score_table(tmp_path / "scores_sae6.csv")["top_tokens"][0] == ["a", "b"]
    _steering_rows().to_csv(tmp_path / "steering_rows.csv", index=False)
    (tmp_path / "replication.json").write_text(
        json.dumps(
            {"config": {"min_examples": 10}, "saes": {"sae6": {"layer": 6}}, "pooled_ratio_high_over_random": 99.0}
        )
    )
    figs = replot(tmp_path, tmp_path / "figs", save=False)
    assert set(figs) == {"sae_scores_scatter", "sae_scores_by_layer", "sae_steering"}
    assert "pooled_ratio_high_over_random" in json.loads(
        (tmp_path / "replication.json").read_text()
    )  # save=False: untouched
    replot(tmp_path, tmp_path / "figs", formats=("html",))
    saved = json.loads((tmp_path / "replication.json").read_text())
    assert saved["kind"] == "sae_replication_summary"
    assert "pooled_ratio_high_over_random" not in saved
    assert saved["pooled"]["success_ratio_high_over_random"] == pytest.approx(3.0)
    assert "lift" in pd.read_csv(tmp_path / "steering_summary.csv").columns
    assert (tmp_path / "figs" / "sae_steering.html").exists()


def test_config_validation():
    with pytest.raises(ValueError, match="strengths"):
        ReplicationConfig(strengths=(0.0,))
    with pytest.raises(ValueError, match=r"ReplicationConfig.temperature"):
        ReplicationConfig(temperature=float("nan"))
    with pytest.raises(ValueError, match="n_scored"):
        ReplicationConfig(n_scored=5, n_steer=4)
    with pytest.raises(ValueError, match="n_prompts"):
        ReplicationConfig(n_prompts=100)
