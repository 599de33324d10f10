"""Batched activation patching equals TransformerLens' own patching functions, on tiny models of six
families (tests/architectures.py) and on the embedded model."""

import warnings

import pytest
import torch
import transformer_lens.patching as tlp
from architectures import FAMILIES, family_model
from jaxtyping import TypeCheckError
from transformer_lens import HookedTransformer, HookedTransformerConfig

from workbench.models import tiny_model
from workbench.patching.activation import activation_patch, restart_blocker
from workbench.patching.tasks import make_metric, random_task

TL = {
    "resid_pre": tlp.get_act_patch_resid_pre,
    "attn_out": tlp.get_act_patch_attn_out,
    "mlp_out": tlp.get_act_patch_mlp_out,
    "heads_all_pos": tlp.get_act_patch_attn_head_out_all_pos,
    "heads_by_pos": tlp.get_act_patch_attn_head_out_by_pos,
}


def _assert_grids_equal_transformer_lens(model, task, **kw):
    metric = make_metric(model, task)
    _, clean_cache = model.run_with_cache(task.clean)
    for stream, tl_fn in TL.items():
        ref = tl_fn(model, task.corrupted, clean_cache, metric)
        # small passes so that one grid spans several forward passes with mixed patches
        ours = activation_patch(model, task.clean, task.corrupted, metric, stream, tokens_per_pass=20, **kw)
        assert ours.shape == ref.shape, stream
        assert float((ours - ref).abs().max()) < 1e-5, (stream, float((ours - ref).abs().max()))
        assert float(ref.abs().max()) > 1e-2, stream  # a non-trivial grid
    assert not any(h.fwd_hooks for h in model.hook_dict.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_every_grid_equals_transformer_lens_on_every_family(family):
    """resid_pre, attn_out, mlp_out, heads (all positions and by position) to 1e-5; the sequence
    (8 tokens) crosses the local-attention window (4) of gemma2 and mistral."""
    model = family_model(family)
    _assert_grids_equal_transformer_lens(model, random_task(model.cfg.d_vocab, n=3, seq_len=8, seed=2))


@pytest.mark.parametrize("family", FAMILIES)
def test_metric_is_one_on_clean_and_zero_on_corrupted_model_output(family):
    """make_metric reads the model's real output (soft-capped on gemma2), so the forward's own
    logits give exactly 1 and 0."""
    model = family_model(family)
    task = random_task(model.cfg.d_vocab, n=3, seq_len=8, seed=2)
    metric = make_metric(model, task)
    assert float(metric(model(task.clean))) == pytest.approx(1.0, abs=1e-5)
    assert float(metric(model(task.corrupted))) == pytest.approx(0.0, abs=1e-5)


def _shortformer():
    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_mlp=64,
        d_vocab=50,
        n_ctx=32,
        act_fn="gelu",
        normalization_type="LN",
        positional_embedding_type="shortformer",
        default_prepend_bos=False,
        seed=3,
        device="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HookedTransformer(cfg).eval().requires_grad_(False)


def test_a_config_where_restarting_at_a_layer_is_wrong_runs_full_forwards():
    """Shortformer feeds the positional embedding to every block, so a start_at_layer restart from
    the residual alone would compute something else: the grid is computed without restarts and
    still equals TransformerLens."""
    model = _shortformer()
    assert "positional_embedding_type" in restart_blocker(model)
    assert restart_blocker(family_model("gpt2")) is None
    _assert_grids_equal_transformer_lens(model, random_task(50, n=2, seq_len=5, seed=1), start_at_layer=True)


def test_starting_at_the_layer_equals_the_full_forward(tiny):
    task = random_task(tiny.cfg.d_vocab, n=2, seq_len=4)
    metric = make_metric(tiny, task)
    a = activation_patch(tiny, task.clean, task.corrupted, metric, "attn_out", start_at_layer=True)
    b = activation_patch(tiny, task.clean, task.corrupted, metric, "attn_out", start_at_layer=False)
    assert (a - b).abs().max() < 1e-5


def _bad(exc, match: str, param: str):
    """Our validation's error, or (when the tests run with jaxtyping's runtime checks on) the type
    checker's, which names the parameter and fires first."""
    return pytest.raises((exc, TypeCheckError), match=f"{match}|parameter '{param}'")


def test_layer_subset_and_bad_arguments(tiny):
    task = random_task(tiny.cfg.d_vocab, n=2, seq_len=4)
    metric = make_metric(tiny, task)
    g = activation_patch(tiny, task.clean, task.corrupted, metric, "mlp_out", layers=[1])
    assert torch.isnan(g[0]).all() and torch.isfinite(g[1]).all()
    with _bad(ValueError, "unknown patching stream", "stream"):
        activation_patch(tiny, task.clean, task.corrupted, metric, "resid_mid")
    with pytest.raises(ValueError, match="not a layer"):
        activation_patch(tiny, task.clean, task.corrupted, metric, "mlp_out", layers=[5])
    with pytest.raises(ValueError, match="layers is empty"):
        activation_patch(tiny, task.clean, task.corrupted, metric, "mlp_out", layers=[])
    with pytest.raises(ValueError, match="outside"):
        activation_patch(tiny, task.clean, task.corrupted + 100, metric, "mlp_out")
    with _bad(TypeError, "integer ids", "clean"):
        activation_patch(tiny, task.clean.float(), task.corrupted, metric, "mlp_out")
    with _bad(ValueError, "equal shape", "corrupted"):
        activation_patch(tiny, task.clean, task.corrupted[:, :3], metric, "mlp_out")
    with pytest.raises(ValueError, match="metric is for 2 prompts"):
        activation_patch(tiny, task.clean[:1], task.corrupted[:1], metric, "mlp_out")
    with pytest.raises(TypeError, match="LogitDiffMetric"):
        activation_patch(tiny, task.clean, task.corrupted, lambda x: x.sum(), "mlp_out")
    with pytest.raises(ValueError, match="tokens_per_pass"):
        activation_patch(tiny, task.clean, task.corrupted, metric, "mlp_out", tokens_per_pass=0)


def test_gpt2_shaped_tiny_model_still_matches(tiny):
    model = tiny_model(n_layers=2, gated=False)
    _assert_grids_equal_transformer_lens(model, random_task(model.cfg.d_vocab, n=3, seq_len=5, seed=2))


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
