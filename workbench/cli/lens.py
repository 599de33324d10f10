"""CLI: ``workbench lens "prompt"``: the logit lens (and tuned lens) of a prompt, printed with rich;
figures go to figures/ (or ``--figures``). ``workbench bench lens``: the long-text lens benchmark."""

from typing import Annotated, Optional, cast

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def lens(
    prompt: str = typer.Argument(..., help="the text to read the lens of"),
    target: Annotated[
        Optional[list[str]],
        typer.Option("--target", "-t", help="target token(s) to track, e.g. ' Paris' (repeatable)"),
    ] = None,
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
    if k < 1:
        raise typer.BadParameter(f"--k must be >= 1, got {k}")
    if train_tuned and (tuned_seconds <= 0 or tuned_sequences < 4):
        raise typer.BadParameter(
            f"need --tuned-seconds > 0 and --tuned-sequences >= 4, got {tuned_seconds}, {tuned_sequences}"
        )
    if steer_layer is not None and steer_token is None:
        raise typer.BadParameter("--steer-layer needs --steer-token (the token whose unembedding direction to add)")

    from workbench.edits import AddVector
    from workbench.experiments.export import save_figure
    from workbench.experiments.tuned_lens import default_tuned_lens_path, train_default_tuned_lens
    from workbench.lens import TunedLens, TunedLensConfig, logit_lens, target_ids
    from workbench.models import chat_prompt, load_model
    from workbench.plots.lens import lens_heatmap, target_curve
    from workbench.registry import HookRegistry

    model = load_model()
    text = chat_prompt(model, prompt) if chat else prompt
    targets = list(target) if target else None
    res = logit_lens(model, text, k=k, targets=targets)
    runs = {"logit lens": res}
    if train_tuned:
        config = TunedLensConfig(steps=5000, tokens_per_step=32, max_seconds=tuned_seconds)
        _, path = train_default_tuned_lens(
            model,
            n_seq=tuned_sequences,
            heldout=max(1, tuned_sequences // 4),
            config=config,
            console=console,
            figures=figures,
        )
        console.print(f"tuned lens saved to {path}")
    if tuned or train_tuned:
        path = default_tuned_lens_path(model)
        if not path.exists():
            raise typer.BadParameter(f"no tuned lens at {path}; run with --train-tuned first")
        runs["tuned lens"] = logit_lens(model, text, k=k, targets=targets, tuned=TunedLens.load(path, model))
    if steer_layer is not None:
        (tid,) = target_ids(model, [cast(str, steer_token)])  # checked not None above
        v = model.W_U[:, tid].detach()
        reg = HookRegistry(model).steer("lens-steer", f"resid_post.{steer_layer}", AddVector(v / v.norm(), steer_coeff))
        runs[f"steered L{steer_layer}"] = logit_lens(model, text, k=k, targets=targets, registry=reg)
    for label, r in runs.items():
        console.print(_last_position_table(label, r))
    written = save_figure(lens_heatmap(res), "logit_lens_heatmap", directory=figures)
    console.print(f"figure: {written['html']}")
    if "tuned lens" in runs:
        save_figure(lens_heatmap(runs["tuned lens"]), "tuned_lens_heatmap", directory=figures)
    if targets:
        w = save_figure(target_curve(runs), "logit_lens_targets", directory=figures)
        console.print(f"figure: {w['html']}")


def _last_position_table(label: str, r) -> Table:
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
    return t


def bench_command(
    tokens: int = typer.Option(3000, help="length of the real text read by the lens"),
    repeats: int = typer.Option(3, help="timed repeats per measurement (median)"),
    chunk_size: int = typer.Option(256, help="(row, position) pairs unembedded at once"),
    threads: int = typer.Option(0, help="torch intra-op threads in every measurement (0: torch's default)"),
) -> None:
    """The logit lens on a long text vs a bare forward and vs its limit (forward + unembedding
    matmuls of the same shape), in every mode, with peak memory (each in its own subprocess)."""
    from workbench.experiments.bench import timing_table
    from workbench.experiments.bench.lens import run_lens_bench

    for name, value in (("--tokens", tokens), ("--repeats", repeats), ("--chunk-size", chunk_size)):
        if value < 1:
            raise typer.BadParameter(f"{name} must be >= 1, got {value}")
    if threads < 0:
        raise typer.BadParameter(f"--threads must be >= 0, got {threads}")
    rows = run_lens_bench(n_tokens=tokens, repeats=repeats, chunk_size=chunk_size, threads=threads, console=console)
    console.print(timing_table(rows, "bench lens (ratio = seconds / baseline)"))


commands = {"lens": lens}
