"""CLI: ``workbench circuit --task ioi`` (DLA, induction heads, path patching, an EAP circuit and its
faithfulness curve; figures and a JSON summary) and ``workbench bench circuit`` (edge scores vs
brute-force edge patching)."""

from typing import Optional

import typer
from rich.console import Console

console = Console()


def circuit(
    task: str = typer.Option("ioi", help="ioi | capital | antonym"),
    n: int = typer.Option(16, help="prompts to build (before dropping the ones the model fails)"),
    seed: int = typer.Option(0, help="seed of the task builder"),
    steps: str = typer.Option("dla,heads,path,edges", help="comma-separated: dla, heads, path, edges"),
    ig_steps: int = typer.Option(5, help="EAP-IG points on the corrupted → clean path"),
    receivers: int = typer.Option(3, help="top logit-writing heads whose queries are path-patched"),
    random_seeds: int = typer.Option(2, help="random-edge circuits per point of the faithfulness curve"),
    figures: Optional[str] = typer.Option(None, help="figure directory (default: figures/)"),
    results: Optional[str] = typer.Option(None, help="directory of circuit_<task>.json (default: results/)"),
) -> None:
    """Circuit analysis of a task on the embedded model: direct logit attribution, attention-head
    scores, path patching and an edge-level circuit (EAP, EAP-IG, EAP-RelP) with its faithfulness."""
    from workbench.experiments.circuits import STEPS, CircuitConfig, run_circuit
    from workbench.models import load_model
    from workbench.patching.tasks import TASKS

    if task not in TASKS:
        raise typer.BadParameter(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    chosen = tuple(s.strip() for s in steps.split(",") if s.strip())
    bad = [s for s in chosen if s not in STEPS]
    if bad or not chosen:
        raise typer.BadParameter(f"--steps: unknown {bad or steps!r}; use {', '.join(STEPS)}")
    cfg = CircuitConfig(
        task=task, n=n, seed=seed, steps=chosen, ig_steps=ig_steps, receivers=receivers, random_seeds=random_seeds
    )  # validates the numbers (ValueError/TypeError: one line, exit code 2)
    model = load_model()
    run_circuit(model, cfg, figures=figures, results=results, log=console.print)


def bench_command(
    task: str = typer.Option("ioi", help="task"),
    n: int = typer.Option(8, help="prompts"),
    receivers: str = typer.Option("logits,MLP20", help="receivers whose incoming edges are brute-force patched"),
) -> None:
    """EAP / EAP-IG / EAP-RelP over every edge vs brute-force edge patching (measured on the edges
    into --receivers, extrapolated); path patching batched vs one sender per pass."""
    from workbench.experiments.bench import timing_table
    from workbench.experiments.circuits import run_edge_bench
    from workbench.models import load_model
    from workbench.patching.tasks import TASKS

    if task not in TASKS:
        raise typer.BadParameter(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    if n < 1:
        raise typer.BadParameter(f"--n must be >= 1, got {n}")
    names = [r.strip() for r in receivers.split(",") if r.strip()]
    if not names:
        raise typer.BadParameter("--receivers is empty")
    rows = run_edge_bench(load_model(), task=task, n=n, receivers=names, log=console.print)
    console.print(timing_table(rows, "bench circuit (ratio < 1 = faster than the baseline)"))


commands = {"circuit": circuit}
