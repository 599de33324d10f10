"""``workbench tour``."""

from pathlib import Path
from typing import Optional

import typer


def tour(
    quick: bool = typer.Option(False, "--quick", help="a one-minute version with tiny budgets"),
    figures: Optional[Path] = typer.Option(
        None, help="directory for figures and the gallery page (default: $WORKBENCH_FIGURES or ./figures)"
    ),
    static: bool = typer.Option(True, help="also write PNG and SVG (needs Chromium for kaleido)"),
    step: Optional[list[str]] = typer.Option(None, "--step", help="run only these steps (repeatable)"),
) -> None:
    """Run the whole workbench end to end on the embedded model; write figures/ and figures/index.html."""
    import time

    from rich.console import Console

    from workbench.experiments.tour import TourConfig, run_tour, summary_table
    from workbench.paths import figures_dir

    console = Console()
    figures = figures_dir(figures)
    try:
        cfg = TourConfig(quick=quick, figures_dir=figures, static=static, steps=tuple(step) if step else None)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    t0 = time.perf_counter()
    results = run_tour(cfg, console=console)
    console.print(summary_table(results))
    console.print(
        f"tour finished in {time.perf_counter() - t0:.0f} s; gallery: {figures / 'index.html'} "
        f"(steps: {', '.join(cfg.step_names)})"
    )
    if any(r.error for r in results):
        raise typer.Exit(code=1)


commands = {"tour": tour}
