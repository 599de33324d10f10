"""CLI: ``workbench lens "prompt"``, ``workbench patch --task ioi --method all`` and
``workbench bench patching``. Summaries print with rich; figures go to figures/."""

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()
METHOD_CHOICES = ("act", "atp", "relp", "all")


def _figdir(figures: Optional[str]) -> Optional[Path]:
    return Path(figures) if figures else None


def lens(
    prompt: str = typer.Argument(..., help="the text to read the lens of"),
    target: Optional[list[str]] = typer.Option(
        None, "--target", "-t", help="target token(s) to track, e.g. ' Paris' (repeatable)"
    ),
    k: int = typer.Option(5, help="top-k tokens per layer"),
    chat: bool = typer.Option(False, help="wrap the prompt in the chat template"),
    steer_layer: Optional[int] = typer.Option(None, help="also show a run steered at this layer (resid_post)"),
    steer_token: Optional[str] = typer.Option(None, help="steer along this token's unembedding direction (one token)"),
    steer_coeff: float = typer.Option(8.0, help="steering coefficient (times the unit direction)"),
    tuned: bool = typer.Option(False, help="also read the tuned lens (loaded from the cache; see --train-tuned)"),
    train_tuned: bool = typer.Option(
        False, help="train the tuned lens first (a few minutes), save it, plot KL by layer"
    ),
    tuned_seconds: float = typer.Option(300.0, help="with --train-tuned: training time budget (seconds)"),
    tuned_sequences: int = typer.Option(
        24, help="with --train-tuned: model-written 64-token sequences (a quarter held out)"
    ),
    figures: Optional[str] = typer.Option(None, help="figure directory (default: figures/)"),
) -> None:
    """Logit lens (and tuned lens) of a prompt: top token per layer, target probabilities, figures."""
    from workbench.edits import AddVector
    from workbench.experiments.export import save_figure
    from workbench.lens import TunedLens, default_tuned_lens_path, lens_heatmap, logit_lens, target_curve, target_ids
    from workbench.models import chat_prompt, load_model
    from workbench.registry import HookRegistry

    model = load_model()
    text = chat_prompt(model, prompt) if chat else prompt
    targets = list(target) if target else None
    res = logit_lens(model, text, k=k, targets=targets)
    runs = {"logit lens": res}
    if train_tuned:
        from workbench import lens as lens_mod

        if tuned_seconds <= 0 or tuned_sequences < 4:
            raise typer.BadParameter(
                f"need --tuned-seconds > 0 and --tuned-sequences >= 4, got {tuned_seconds}, {tuned_sequences}"
            )
        config = lens_mod.TunedLensConfig(steps=5000, tokens_per_step=32, max_seconds=tuned_seconds)
        kl, path = lens_mod.train_default_tuned_lens(
            model,
            n_seq=tuned_sequences,
            heldout=max(1, tuned_sequences // 4),
            config=config,
            console=console,
            figures=_figdir(figures),
        )
        console.print(f"tuned lens saved to {path}")
    if tuned or train_tuned:
        path = default_tuned_lens_path(model)
        if not path.exists():
            raise typer.BadParameter(f"no tuned lens at {path}; run with --train-tuned first")
        runs["tuned lens"] = logit_lens(model, text, k=k, targets=targets, tuned=TunedLens.load(path))
    if steer_layer is not None:
        if steer_token is None:
            raise typer.BadParameter("--steer-layer needs --steer-token (the token whose unembedding direction to add)")
        (tid,) = target_ids(model, [steer_token])
        v = model.W_U[:, tid].detach()
        reg = HookRegistry(model).steer("lens-steer", f"resid_post.{steer_layer}", AddVector(v / v.norm(), steer_coeff))
        runs[f"steered L{steer_layer}"] = logit_lens(model, text, k=k, targets=targets, registry=reg)
    for label, r in runs.items():
        t = Table(title=f"{label}: last position, per layer")
        t.add_column("layer")
        t.add_column("top tokens (p)")
        t.add_column("KL to final (nats)")
        for tok in r.target_tokens:
            t.add_column(f"p / rank of {tok!r}")
        for li, L in enumerate(r.layers):
            tops = ", ".join(
                f"{w!r} {p:.2f}" for w, p in zip(r.top_tokens[0][li][-1][:3], r.top_probs[0, li, -1, :3].tolist())
            )
            extra = [
                f"{r.target_probs[0, li, -1, j]:.3f} / {int(r.target_ranks[0, li, -1, j])}"
                for j in range(len(r.target_tokens))
            ]
            t.add_row(str(L), tops, f"{r.kl_to_final[0, li, -1]:.2f}", *extra)
        console.print(t)
    written = save_figure(lens_heatmap(res), "logit_lens_heatmap", directory=_figdir(figures))
    console.print(f"figure: {written['html']}")
    if "tuned lens" in runs:
        save_figure(lens_heatmap(runs["tuned lens"]), "tuned_lens_heatmap", directory=_figdir(figures))
    if targets:
        w = save_figure(target_curve(runs), "logit_lens_targets", directory=_figdir(figures))
        console.print(f"figure: {w['html']}")


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
    from workbench.experiments.export import save_figure
    from workbench.models import load_model
    from workbench.patching.activation import STREAMS, activation_patch
    from workbench.patching.faithfulness import (
        METHODS,
        grid_heatmap,
        grids_figure,
        measure_faithfulness,
        scatter_figure,
    )
    from workbench.patching.tasks import build_task, check_task, make_metric

    if method not in METHOD_CHOICES:
        raise typer.BadParameter(f"--method must be one of {', '.join(METHOD_CHOICES)}, got {method!r}")
    stream_list = [s.strip() for s in streams.split(",") if s.strip()]
    bad = [s for s in stream_list if s not in STREAMS]
    if bad:
        raise typer.BadParameter(f"unknown streams {bad}; use {', '.join(STREAMS)}")
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
        f"mean logit difference: clean {metric.ld_clean:.3f}, corrupted {metric.ld_corrupted:.3f} ({t.n} prompts × {t.seq_len} tokens)"
    )
    tokens = [model.tokenizer.decode([i]) for i in t.clean[0].tolist()]
    out = Path(figures) if figures else None
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
    d = out or Path("figures")
    d.mkdir(parents=True, exist_ok=True)
    (d / f"patch_{t.name}_faithfulness.json").write_text(json.dumps(record, indent=2))
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
    task: str = typer.Option("capital", help="task whose prompts are patched (capital: short prompts)"),
    n: int = typer.Option(4, help="prompts"),
    repeats: int = typer.Option(1, help="timed repeats (median)"),
) -> None:
    """Our activation-patching grid vs TransformerLens' get_act_patch_resid_pre; AtP and RelP vs the
    full activation-patching sweep (resid_pre + attn_out + mlp_out)."""
    from workbench.experiments.bench import timing_table
    from workbench.experiments.bench.patching import run_patching_bench

    rows = run_patching_bench(task=task, n=n, repeats=repeats, console=console)
    console.print(timing_table(rows, "bench patching (ratio < 1 = faster than the baseline)"))


commands = {"lens": lens, "patch": patch}
