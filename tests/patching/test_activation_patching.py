"""Batched activation patching equals TransformerLens' own patching functions."""

import pytest
import torch
import transformer_lens.patching as tlp

from workbench.models import tiny_model
from workbench.patching.activation import activation_patch
from workbench.patching.tasks import make_metric, random_task

TL = {
    "resid_pre": tlp.get_act_patch_resid_pre,
    "attn_out": tlp.get_act_patch_attn_out,
    "mlp_out": tlp.get_act_patch_mlp_out,
    "heads_all_pos": tlp.get_act_patch_attn_head_out_all_pos,
    "heads_by_pos": tlp.get_act_patch_attn_head_out_by_pos,
}


@pytest.mark.parametrize("gated", [True, False], ids=["llama-shaped", "gpt2-shaped"])
def test_every_grid_equals_transformer_lens(gated):
    model = tiny_model(n_layers=2, gated=gated)
    task = random_task(model.cfg.d_vocab, n=3, seq_len=5, seed=2)
    metric = make_metric(model, task)
    _, clean_cache = model.run_with_cache(task.clean)
    for stream, tl_fn in TL.items():
        ref = tl_fn(model, task.corrupted, clean_cache, metric)
        # small passes so that one grid spans several forward passes with mixed patches
        ours = activation_patch(model, task.clean, task.corrupted, metric, stream, tokens_per_pass=20)
        assert ours.shape == ref.shape, stream
        assert (ours - ref).abs().max() < 1e-4, stream
        assert ref.abs().max() > 1e-2  # a non-trivial grid
    assert not any(h.fwd_hooks for h in model.hook_dict.values())


def test_starting_at_the_layer_equals_the_full_forward(tiny):
    task = random_task(tiny.cfg.d_vocab, n=2, seq_len=4)
    metric = make_metric(tiny, task)
    a = activation_patch(tiny, task.clean, task.corrupted, metric, "attn_out", start_at_layer=True)
    b = activation_patch(tiny, task.clean, task.corrupted, metric, "attn_out", start_at_layer=False)
    assert (a - b).abs().max() < 1e-5


def test_layer_subset_and_bad_stream(tiny):
    task = random_task(tiny.cfg.d_vocab, n=2, seq_len=4)
    metric = make_metric(tiny, task)
    g = activation_patch(tiny, task.clean, task.corrupted, metric, "mlp_out", layers=[1])
    assert torch.isnan(g[0]).all() and torch.isfinite(g[1]).all()
    with pytest.raises(ValueError, match="unknown patching stream"):
        activation_patch(tiny, task.clean, task.corrupted, metric, "resid_mid")
    with pytest.raises(ValueError, match="not a layer"):
        activation_patch(tiny, task.clean, task.corrupted, metric, "mlp_out", layers=[5])


@pytest.mark.embedded
def test_embedded_resid_pre_grid_equals_transformer_lens(embedded):
    """On the embedded model, for three layers (TL's own generic patching function with an index
    table of those layers × every position; the full 30-layer TL grid takes too long for the suite)."""
    import pandas as pd

    from workbench.patching.tasks import capital_task, check_task

    task = check_task(embedded, capital_task(embedded, 4)).kept.head(2)
    metric = make_metric(embedded, task)
    layers = [0, 14, 29]
    _, clean_cache = embedded.run_with_cache(task.clean, names_filter=lambda n: n.endswith("hook_resid_pre"))
    index = pd.DataFrame([(L, p) for L in layers for p in range(task.seq_len)], columns=["layer", "pos"])
    ref = tlp.generic_activation_patch(
        embedded, task.corrupted, clean_cache, metric, tlp.layer_pos_patch_setter, "resid_pre", index_df=index
    ).view(len(layers), task.seq_len)
    ours = activation_patch(embedded, task.clean, task.corrupted, metric, "resid_pre", layers=layers)[layers]
    assert (ours - ref).abs().max() < 1e-4
    assert ref[-1, -1] > 0.9  # by the last layer the answer lives in the last position's residual
