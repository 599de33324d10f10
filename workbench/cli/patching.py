"""CLI: ``workbench patch --task ioi --method all`` and ``workbench bench patching``. Summaries print
with rich; figures go to figures/ (or ``--figures``). (``workbench lens`` is in ``workbench.cli.lens``.)"""

from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()
METHOD_CHOICES = ("act", "atp", "relp", "all")


def patch(
    task: str = typer.Option("ioi", help="ioi | capital | antonym"),
    method: str = typer.Option("all", help="act | atp | relp | all (all = every method + faithfulness)"),
    n: int = typer.Option(8, help="prompts to build (before dropping the ones the model fails)"),
    streams: str = typer.Option(
        "resid_pre,attn_out,mlp_out", help="comma-separated: resid_pre, attn_out, mlp_out, heads_all_pos, heads_by_pos"
    ),
    seed: int = typer.Option(0, help="seed of the task builder"),
    figures: Optional[str] = typer.Option(None, help="figure directory (default: figures/)"),
) -> None:
    """Activation patching, AtP and RelP on a task; with --method all, their Pearson correlations
    with activation patching per component, scatter figures and grids."""
    from workbench.artifacts import save_json
    from workbench.experiments.export import save_figure
    from workbench.models import load_model
    from workbench.patching.activation import STREAMS, activation_patch
    from workbench.patching.faithfulness import METHODS, measure_faithfulness
    from workbench.patching.tasks import TASKS, build_task, check_task, make_metric
    from workbench.paths import figures_dir
    from workbench.plots.patching import grid_heatmap, grids_figure, scatter_figure
    from workbench.tokens import token_strings

    if method not in METHOD_CHOICES:
        raise typer.BadParameter(f"--method must be one of {', '.join(METHOD_CHOICES)}, got {method!r}")
    if task not in TASKS:
        raise typer.BadParameter(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    if n < 1:
        raise typer.BadParameter(f"--n must be >= 1, got {n}")
    stream_list = [s.strip() for s in streams.split(",") if s.strip()]
    bad = [s for s in stream_list if s not in STREAMS]
    if bad or not stream_list:
        raise typer.BadParameter(f"unknown streams {bad or streams!r}; use {', '.join(STREAMS)}")
    model = load_model()
    built = build_task(model, task, n, seed=seed)
    check = check_task(model, built)
    console.print(check.summary())
    for d in check.dropped:
        console.print(f"  dropped (model fails it): {d!r}")
    for note in built.notes:
        console.print(f"  note: {note}")
    t = check.kept
    metric = make_metric(model, t)
    console.print(
        f"mean logit difference: clean {metric.ld_clean:.3f}, corrupted {metric.ld_corrupted:.3f} "
        f"({t.n} prompts × {t.seq_len} tokens)"
    )
    tokens = token_strings(model, t.clean[0].tolist())
    out = figures
    if method == "act":
        for s in stream_list:
            g = activation_patch(model, t.clean, t.corrupted, metric, s, progress=True)
            _print_top(f"activation patching, {s}", g)
            if g.ndim == 2:
                save_figure(
                    grid_heatmap(
                        g,
                        tokens=tokens if s != "heads_all_pos" else None,
                        title=f"{t.name}: activation patching, {s}",
                        x_label="position: token" if s != "heads_all_pos" else "head",
                    ),
                    f"patch_{t.name}_act_{s}",
                    directory=out,
                )
        return
    if method in ("atp", "relp"):
        from workbench.patching.attribution import attribution_patch

        grids = attribution_patch(model, t.clean, t.corrupted, metric, stream_list, rules=METHODS[method])
        for s, g in grids.items():
            _print_top(f"{method}, {s}", g)
            if g.ndim == 2:
                save_figure(
                    grid_heatmap(g, tokens=tokens if s != "heads_all_pos" else None, title=f"{t.name}: {method}, {s}"),
                    f"patch_{t.name}_{method}_{s}",
                    directory=out,
                )
        return
    res = measure_faithfulness(model, t, metric, stream_list)
    table = Table(title=f"{t.name}: Pearson r with activation patching ({t.n} prompts)")
    table.add_column("component")
    for m in res.estimates:
        table.add_column(m)
    corr = res.correlations
    for s in stream_list:
        table.add_row(s, *[f"{corr[m][s]:.3f}" for m in res.estimates])
    console.print(table)
    console.print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in res.seconds.items()))
    for s in stream_list:
        save_figure(scatter_figure(res, s), f"patch_{t.name}_scatter_{s}", directory=out)
        if res.act[s].ndim == 2 and s != "heads_all_pos":
            save_figure(grids_figure(res, s, tokens=tokens), f"patch_{t.name}_grids_{s}", directory=out)
    record = {
        "task": t.name,
        "n_prompts": t.n,
        "seq_len": t.seq_len,
        "clean_accuracy": check.clean_accuracy,
        "corrupted_accuracy": check.corrupted_accuracy,
        "dropped": list(check.dropped),
        "ld_clean": metric.ld_clean,
        "ld_corrupted": metric.ld_corrupted,
        "pearson_r": corr,
        "seconds": res.seconds,
    }
    d = figures_dir(out)
    save_json(d / f"patch_{t.name}_faithfulness.json", record, kind="patching_faithfulness", version=1)
    console.print(f"figures and patch_{t.name}_faithfulness.json written to {d}/")


def _print_top(title: str, grid, k: int = 8) -> None:
    import torch

    flat = torch.nan_to_num(grid, nan=0.0).flatten()
    idx = flat.abs().topk(min(k, flat.numel())).indices
    t = Table(title=f"{title}: largest |effect|")
    t.add_column("index (layer, ...)")
    t.add_column("value")
    for i in idx.tolist():
        t.add_row(str(tuple(int(x) for x in torch.unravel_index(torch.tensor(i), grid.shape))), f"{flat[i]:.3f}")
    console.print(t)


def bench_command(
    task: str = typer.Option("ioi", help="task whose prompts are patched (ioi: 4 prompts × ~14 tokens)"),
    n: int = typer.Option(4, help="prompts"),
    repeats: int = typer.Option(3, help="timed repeats of our grids (median)"),
    baseline_repeats: int = typer.Option(1, help="timed repeats of TransformerLens' grid (about 2 minutes each)"),
    attribution: bool = typer.Option(True, help="also time AtP and RelP against the 3-grid sweep"),
    threads: int = typer.Option(0, help="torch intra-op threads for the run (0: torch's default)"),
) -> None:
    """Our activation-patching grid vs TransformerLens' get_act_patch_resid_pre (same inputs, grids
    compared) and vs the FLOP limit of the ideal schedule; AtP and RelP vs the full sweep."""
    from workbench.experiments.bench import timing_table
    from workbench.experiments.bench.patching import run_patching_bench
    from workbench.patching.tasks import TASKS

    if task not in TASKS:
        raise typer.BadParameter(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    for name, value in (("--n", n), ("--repeats", repeats), ("--baseline-repeats", baseline_repeats)):
        if value < 1:
            raise typer.BadParameter(f"{name} must be >= 1, got {value}")
    if threads < 0:
        raise typer.BadParameter(f"--threads must be >= 0, got {threads}")
    rows = run_patching_bench(
        task=task,
        n=n,
        repeats=repeats,
        baseline_repeats=baseline_repeats,
        attribution=attribution,
        threads=threads or None,
        console=console,
    )
    console.print(timing_table(rows, "bench patching (ratio < 1 = faster than the baseline)"))


commands = {"patch": patch}
