"""``workbench bench patching``: activation patching against TransformerLens and against the
compute limit, then AtP and RelP, on the embedded model (IOI, 4 prompts × ~14 tokens by default).

1. **Against TransformerLens.** Our ``resid_pre`` grid (``schedule="auto"``: KV reuse, fused blocks)
   and TransformerLens' ``get_act_patch_resid_pre`` on the same inputs and metric, timed in the same
   run; the grids are compared in the same run (max |difference|). Goal: ≥ 15× faster. The
   ``start_at_layer`` restart (the previous schedule) is timed too.
2. **Against the limit.** The FLOPs of the least work that gives the grid
   (``workbench.patching.reuse.patch_flops``: blocks L.. at positions ≥ p, the last block only at
   the last position, two logits) divided by the measured matmul peak of a block-sized product
   (``matmul_gflops``) is the limit time; the report gives our time / limit. TransformerLens' FLOPs
   (a full forward and a full unembedding per patch) are printed for scale.
3. AtP and RelP (the resid_pre, attn_out and mlp_out grids from one backward pass) vs activation
   patching: the timed baseline is TransformerLens' resid_pre grid alone — a third of its 3-grid
   sweep — and the note gives the ratio to our 3-grid sweep timed in the same run.
"""

from typing import Optional

import torch

from workbench.experiments.bench import Timing, machine_note, matmul_gflops, median_time


def run_patching_bench(
    task: str = "ioi",
    n: int = 4,
    repeats: int = 3,
    baseline_repeats: int = 1,
    attribution: bool = True,
    threads: Optional[int] = None,
    console=None,
) -> list[Timing]:
    """``threads``: torch intra-op threads for the whole run (None: torch's default)."""
    import transformer_lens.patching as tlp

    from workbench.models import load_model
    from workbench.patching.activation import activation_patch, patch_index, patch_schedule
    from workbench.patching.attribution import RelPRules, attribution_patch
    from workbench.patching.reuse import full_forward_flops, patch_flops
    from workbench.patching.tasks import build_task, check_task, make_metric

    if threads is not None:
        torch.set_num_threads(threads)
    model = load_model()
    t = check_task(model, build_task(model, task, max(n * 2, 4))).kept.head(n)
    metric = make_metric(model, t)
    T, L = t.seq_len, model.cfg.n_layers
    shape = f"{t.n} prompts × {T} tokens, {L} layers"
    say = console.print if console is not None else (lambda *a, **k: None)
    used, why = patch_schedule(model)
    say(f"task {task}: {shape}; schedule {used}" + (f" ({why})" if why else "") + f"; {machine_note()}")
    rows: list[Timing] = []

    peak = matmul_gflops()
    patches = [(layer, p) for layer in range(L) for p, _ in patch_index(model, "resid_pre", T)]
    ideal = patch_flops(model, T, t.n, patches)
    tl_flops = len(patches) * t.n * full_forward_flops(model, T, unembed_positions=T)
    limit = ideal / (peak * 1e9)
    say(
        f"matmul peak {peak:.0f} GFLOP/s; ideal schedule {ideal / 1e12:.3f} TFLOP -> limit {limit:.2f} s; "
        f"TL computes {tl_flops / 1e12:.2f} TFLOP ({tl_flops / ideal:.1f}× the ideal)"
    )

    _, clean_cache = model.run_with_cache(t.clean, names_filter=lambda name: name.endswith("hook_resid_pre"))
    box = {}

    def tl():
        box["tl"] = tlp.get_act_patch_resid_pre(model, t.corrupted, clean_cache, metric)

    def ours():
        box["ours"] = activation_patch(model, t.clean, t.corrupted, metric, "resid_pre")

    def restart():
        box["restart"] = activation_patch(model, t.clean, t.corrupted, metric, "resid_pre", schedule="restart")

    with torch.no_grad():
        t_ours = median_time(ours, repeats)
        t_restart = median_time(restart, baseline_repeats, warmup=0)
        t_tl = median_time(tl, baseline_repeats, warmup=0)
    err = float((box["tl"] - box["ours"]).abs().max())
    err_restart = float((box["tl"] - box["restart"]).abs().max())
    rows.append(
        Timing(
            f"ours: resid_pre grid ({used})",
            t_ours,
            "TL get_act_patch_resid_pre",
            t_tl,
            f"{shape}; max |ours − TL| {err:.1e}; speed-up {t_tl / t_ours:.1f}× (goal ≥ 15×)",
        )
    )
    rows.append(
        Timing(
            f"ours: resid_pre grid ({used})",
            t_ours,
            f"limit: ideal schedule at the matmul peak ({peak:.0f} GFLOP/s)",
            limit,
            f"{ideal / 1e12:.3f} TFLOP in {t_ours:.2f} s = {ideal / t_ours / 1e9:.0f} GFLOP/s; "
            f"{t_ours / limit:.2f}× the limit",
        )
    )
    rows.append(
        Timing(
            "previous schedule: start_at_layer restart",
            t_restart,
            "TL get_act_patch_resid_pre",
            t_tl,
            f"max |restart − TL| {err_restart:.1e}; speed-up {t_tl / t_restart:.1f}×; KV reuse is "
            f"{t_restart / t_ours:.1f}× faster",
        )
    )
    say(
        f"resid_pre grid: TL {t_tl:.1f} s, ours {t_ours:.2f} s ({t_tl / t_ours:.1f}×, max |diff| {err:.1e}), "
        f"restart {t_restart:.1f} s, limit {limit:.2f} s; {machine_note()}"
    )
    if not attribution:
        return rows

    def sweep():
        for s in ("resid_pre", "attn_out", "mlp_out"):
            activation_patch(model, t.clean, t.corrupted, metric, s)

    with torch.no_grad():
        t_sweep = median_time(sweep, repeats, warmup=0)
    say(f"our 3-grid sweep: {t_sweep:.1f} s")
    streams = ("resid_pre", "attn_out", "mlp_out")
    for label, rules in (
        ("AtP", RelPRules.none()),
        ("RelP", RelPRules()),
        ("RelP + AH-rule", RelPRules(attention=True)),
    ):
        t_est = median_time(
            lambda rules=rules: attribution_patch(model, t.clean, t.corrupted, metric, streams, rules=rules), repeats
        )
        rows.append(
            Timing(
                f"{label}: resid_pre + attn_out + mlp_out at once",
                t_est,
                "TL activation patching, resid_pre grid only",
                t_tl,
                f"vs TL's 3-grid sweep (≥ 3 × {t_tl:.0f} s): ≥ {3 * t_tl / t_est:.0f}× (goal ≥ 50×); "
                f"vs our 3-grid sweep ({t_sweep:.1f} s): {t_sweep / t_est:.1f}×",
            )
        )
        say(f"{label}: {t_est:.2f} s")
    return rows


def print_results(rows: list[Timing], console) -> None:
    from workbench.experiments.bench import timing_table

    console.print(timing_table(rows, "bench patching (ratio < 1 = faster than the baseline)"))


__all__ = ["print_results", "run_patching_bench"]
