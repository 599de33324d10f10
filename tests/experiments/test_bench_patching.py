"""What ``workbench bench patching`` relies on, checked without timing: the FLOP count of the ideal
schedule is the work the KV-reuse sweeps really do (counted by torch's FlopCounterMode), and the
machine-limit helpers measure something."""

import math

import pytest
from architectures import family_model
from torch.utils.flop_counter import FlopCounterMode

from workbench.experiments.bench import copy_gbps, machine_note, matmul_gflops
from workbench.patching.activation import _record_all, patch_index
from workbench.patching.reuse import full_forward_flops, kv_reuse_patch_lds, patch_flops, record_corrupted
from workbench.patching.tasks import make_metric, random_task


@pytest.mark.parametrize("family", ["llama", "gpt2", "neox"])
def test_the_sweeps_do_exactly_the_ideal_projection_and_mlp_work(family):
    """The matrix products of the KV-reuse sweeps of a resid_pre grid (torch's FlopCounterMode;
    the two recording forwards are not counted) equal patch_flops without attention and readout:
    blocks L.. at positions ≥ p, the last block only at the last position."""
    model = family_model(family, n_layers=3)
    task = random_task(model.cfg.d_vocab, n=2, seq_len=7, seed=1)
    metric = make_metric(model, task)
    T, n, L = task.seq_len, task.n, model.cfg.n_layers
    layers = list(range(L))
    clean = _record_all(model, task.clean, {f"c{i}": f"resid_pre.{i}" for i in layers})
    run = record_corrupted(model, task.corrupted, layers)
    patches = patch_index(model, "resid_pre", T)
    with FlopCounterMode(display=False) as counter:
        kv_reuse_patch_lds(
            model,
            {i: clean[f"c{i}"] for i in layers},
            run,
            metric,
            None,
            {i: patches for i in layers},
            tokens_per_pass=64,
        )
    counts = counter.get_flop_counts()["Global"]
    linear = sum(v for op, v in counts.items() if str(op) in ("aten.mm", "aten.addmm"))
    ideal = patch_flops(model, T, n, [(i, p) for i in layers for p, _ in patches], attention=False, readout=False)
    assert linear == pytest.approx(ideal, rel=1e-12)
    # a patch at layer 0, position 0 without the last-block saving is one forward pass
    one = patch_flops(model, T, 1, [(0, 0)], only_last=False, readout=False)
    assert one == pytest.approx(full_forward_flops(model, T, unembed_positions=0))
    assert patch_flops(model, T, 1, [(1, 3)]) < patch_flops(model, T, 1, [(1, 2)]) < patch_flops(model, T, 1, [(0, 2)])


def test_machine_limits_are_measured():
    assert math.isfinite(matmul_gflops(64, 64, 64, repeats=1)) and matmul_gflops(64, 64, 64, repeats=1) > 0
    assert copy_gbps(8, repeats=1) > 0
    assert "load" in machine_note() and "threads" in machine_note()
