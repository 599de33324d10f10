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
from workbench.patching.activation import activation_patch, patch_schedule, restart_blocker
from workbench.patching.tasks import make_metric, random_task

TL = {
    "resid_pre": tlp.get_act_patch_resid_pre,
    "attn_out": tlp.get_act_patch_attn_out,
    "mlp_out": tlp.get_act_patch_mlp_out,
    "heads_all_pos": tlp.get_act_patch_attn_head_out_all_pos,
    "heads_by_pos": tlp.get_act_patch_attn_head_out_by_pos,
}


def _assert_grids_equal_transformer_lens(model, task, schedules=("auto",), tokens_per_pass=(20,)):
    """Every stream's grid equals TransformerLens' for each schedule and pass size (small passes
    split one grid into several sweeps/forwards with mixed patches)."""
    metric = make_metric(model, task)
    _, clean_cache = model.run_with_cache(task.clean)
    for stream, tl_fn in TL.items():
        ref = tl_fn(model, task.corrupted, clean_cache, metric)
        assert float(ref.abs().max()) > 1e-2, stream  # a non-trivial grid
        for schedule in schedules:
            for tpp in tokens_per_pass:
                ours = activation_patch(
                    model, task.clean, task.corrupted, metric, stream, tokens_per_pass=tpp, schedule=schedule
                )
                assert ours.shape == ref.shape, stream
                err = float((ours - ref).abs().max())
                assert err < 1e-5, (stream, schedule, tpp, err)
    assert not any(h.fwd_hooks for h in model.hook_dict.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_every_grid_equals_transformer_lens_on_every_family(family):
    """resid_pre, attn_out, mlp_out, heads (all positions and by position) to 1e-5, with KV reuse
    (one sweep per start position, and sweeps split into pieces) and with the restart; the sequence
    (8 tokens) crosses the local-attention window (4) of gemma2 and mistral."""
    model = family_model(family)
    assert patch_schedule(model) == ("kv_reuse", None)
    _assert_grids_equal_transformer_lens(
        model,
        random_task(model.cfg.d_vocab, n=3, seq_len=8, seed=2),
        schedules=("kv_reuse", "restart"),
        tokens_per_pass=(20, 4096),
    )


@pytest.mark.parametrize("family", ["gemma2", "neox"])
def test_kv_reuse_on_deeper_models_with_every_window_pattern(family):
    """Four layers (Gemma-2: local, global, local, global) and 11 tokens with window 3, so patches
    start inside, at and beyond the window of the later positions; KV reuse equals TL."""
    model = family_model(family, n_layers=4, window_size=3)
    _assert_grids_equal_transformer_lens(
        model, random_task(model.cfg.d_vocab, n=2, seq_len=11, seed=5), schedules=("kv_reuse",), tokens_per_pass=(64,)
    )


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


def test_shortformer_positions_reach_every_recomputed_block_but_block_a_restart():
    """Shortformer feeds the positional embedding to every block: KV reuse passes it for the
    recomputed positions and equals TransformerLens; a start_at_layer restart from the residual
    alone would compute something else, so it is refused naming the field, and the full schedule
    still equals TransformerLens."""
    model = _shortformer()
    assert "positional_embedding_type" in restart_blocker(model)
    assert restart_blocker(family_model("gpt2")) is None
    task = random_task(50, n=2, seq_len=5, seed=1)
    _assert_grids_equal_transformer_lens(model, task, schedules=("auto", "full"))
    metric = make_metric(model, task)
    with pytest.raises(ValueError, match="positional_embedding_type"):
        activation_patch(model, task.clean, task.corrupted, metric, "resid_pre", schedule="restart")


def test_a_config_without_kv_reuse_falls_back_to_the_restart_and_says_so(monkeypatch):
    """Where the KV-reuse path cannot follow the config (here: a block that is not TransformerLens'
    TransformerBlock), 'auto' runs the restart, patch_schedule names the reason, and asking for
    kv_reuse raises."""
    from transformer_lens.components.transformer_block import TransformerBlock

    model = family_model("llama")

    class OtherBlock(TransformerBlock):
        pass

    model.blocks[1].__class__ = OtherBlock
    used, why = patch_schedule(model)
    assert used == "restart" and "blocks.1 is a OtherBlock" in why
    task = random_task(model.cfg.d_vocab, n=2, seq_len=6, seed=3)
    metric = make_metric(model, task)
    with pytest.raises(ValueError, match=r"blocks\.1 is a OtherBlock"):
        activation_patch(model, task.clean, task.corrupted, metric, "resid_pre", schedule="kv_reuse")
    _assert_grids_equal_transformer_lens(model, task)


def test_every_schedule_gives_the_same_grid(tiny):
    task = random_task(tiny.cfg.d_vocab, n=2, seq_len=4)
    metric = make_metric(tiny, task)
    grids = [
        activation_patch(tiny, task.clean, task.corrupted, metric, "attn_out", schedule=s)
        for s in ("kv_reuse", "restart", "full")
    ]
    assert (grids[0] - grids[1]).abs().max() < 1e-5
    assert (grids[0] - grids[2]).abs().max() < 1e-5


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
    with _bad(ValueError, "schedule", "schedule"):
        activation_patch(tiny, task.clean, task.corrupted, metric, "mlp_out", schedule="fast")


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


def test_a_hooked_attention_runs_through_transformer_lens_block_and_still_matches():
    """A hook on an attention internal the fused block does not call (hook_pattern) sends that
    layer through TransformerLens' own block (the plan names it); the grid still equals TL's."""
    from workbench.patching.reuse import record_corrupted, sweep_plan

    model = family_model("gemma2")
    task = random_task(model.cfg.d_vocab, n=2, seq_len=7, seed=4)
    handle = model.blocks[1].attn.hook_pattern.register_forward_hook(lambda mod, inp, out: None)
    try:
        plan = sweep_plan(model, record_corrupted(model, task.corrupted, [0, 1]))
        assert plan.fused == [True, False] and "hook_pattern" in plan.why[1] and not plan.only_last
        _assert_grids_equal_transformer_lens(model, task, schedules=("kv_reuse",))
    finally:
        handle.remove()
    plan = sweep_plan(model, record_corrupted(model, task.corrupted, [0, 1]))
    assert plan.fused == [True, True] and plan.only_last
