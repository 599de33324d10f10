"""The steering bake-off as an experiment: run it and write its tables, summary and figures.

The computation is ``workbench.concepts.bakeoff`` (a library call that returns data); this module
writes what it returns, through ``workbench.artifacts`` (tables as CSV, the summary as JSON with a
kind and schema version) and ``workbench.experiments.export.save_figure`` (the figures of
``workbench.plots.concepts.bakeoff_figures``). Files are named ``concepts_bakeoff_<concept>*``.
"""

from dataclasses import asdict
from pathlib import Path
from typing import Union

from workbench.artifacts import save_json, save_table
from workbench.concepts.bakeoff import BakeoffConfig, BakeoffResult, run_bakeoff
from workbench.experiments.export import save_figure
from workbench.paths import figures_dir
from workbench.plots.concepts import bakeoff_figures

SUMMARY_KIND = "concepts_bakeoff_summary"
SUMMARY_VERSION = 1


def summary_document(result: BakeoffResult) -> dict:
    """The JSON summary: the config, the winner, the wall time and one record per method."""
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(result.config).items()}
    return {
        "config": config,
        "winner": result.winner,
        "seconds": result.seconds,
        "summary": result.summary.to_dict(orient="records"),
    }


def save_bakeoff(
    result: BakeoffResult, directory: Union[str, Path, None] = None, *, static: bool = True
) -> dict[str, str]:
    """Write ``concepts_bakeoff_<concept>.csv`` (one row per condition), ``..._completions.csv``,
    ``..._summary.json`` and the figures (HTML, plus PNG and SVG when ``static``) under ``directory``
    (default ``workbench.paths.figures_dir()``). Returns ``{what: path}``."""
    if not isinstance(result, BakeoffResult):
        raise TypeError(f"save_bakeoff needs a BakeoffResult, got {type(result).__name__}")
    d = figures_dir(directory)
    stem = f"concepts_bakeoff_{result.config.concept}"
    out = {
        "table": str(save_table(result.table, d / f"{stem}.csv")),
        "completions": str(save_table(result.completions, d / f"{stem}_completions.csv")),
        "summary": str(
            save_json(d / f"{stem}_summary.json", summary_document(result), kind=SUMMARY_KIND, version=SUMMARY_VERSION)
        ),
    }
    formats = ("html", "png", "svg") if static else ("html",)
    for name, fig in bakeoff_figures(result).items():
        written = save_figure(fig, f"{stem}_{name}", directory=d, formats=formats)
        out[name] = str(written["html"])
    return out


def run_and_save(
    model,
    config: BakeoffConfig,
    directory: Union[str, Path, None] = None,
    *,
    static: bool = True,
    progress: bool = True,
) -> tuple[BakeoffResult, dict[str, str]]:
    """``run_bakeoff`` then ``save_bakeoff``."""
    result = run_bakeoff(model, config, progress=progress)
    return result, save_bakeoff(result, directory, static=static)


__all__ = ["SUMMARY_KIND", "SUMMARY_VERSION", "run_and_save", "save_bakeoff", "summary_document"]
