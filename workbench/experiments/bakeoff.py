"""The steering bake-off as an experiment: run it and write its tables, summary, report and figures.

The computation is ``workbench.concepts.bakeoff`` (a library call that returns data); this module
writes what it returns, through ``workbench.artifacts`` (tables as CSV, the summary as JSON with a
kind and schema version, a Markdown report with every number and its interval) and
``workbench.experiments.export.save_figure`` (the figures of
``workbench.plots.concepts.bakeoff_figures``). Files are named ``concepts_bakeoff_<concept>*``.

``hf_generate_speed`` times Hugging Face ``generate`` on the same dequantised weights
(``workbench.models.load_hf_embedded``) at the bake-off's batch size, sampling and length, so the
summary reports the bake-off's generated tokens/s next to the reference.
"""

import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Union

import torch

from workbench.artifacts import save_json, save_table, save_text
from workbench.concepts.bakeoff import BakeoffConfig, BakeoffResult, interval_text, run_bakeoff
from workbench.experiments.export import save_figure
from workbench.paths import figures_dir
from workbench.plots.concepts import bakeoff_figures, method_label
from workbench.prompts import neutral_prompts

SUMMARY_KIND = "concepts_bakeoff_summary"
SUMMARY_VERSION = 2  # 2: intervals, winners by the interval rule, control row, generation timing


def hf_generate_speed(
    batch_size: int, max_new_tokens: int, *, temperature: float = 0.7, n_prompts: int = 48, repeats: int = 1
) -> dict:
    """Tokens/s of Hugging Face ``generate`` (unsteered, KV cache, ``min_new_tokens = max_new_tokens``
    so every row decodes every step) on ``batch_size`` rows of the neutral prompts, left-padded, with
    the same sampling; the fastest of ``repeats`` calls."""
    from workbench.models import load_hf_embedded

    hf, tok = load_hf_embedded()
    prompts = list(neutral_prompts(n_prompts))
    rows = (prompts * (batch_size // len(prompts) + 1))[:batch_size]
    enc = tok(rows, return_tensors="pt", padding=True, padding_side="left")
    sampling = (
        dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0) if temperature > 0 else dict(do_sample=False)
    )
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.no_grad():
            hf.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                min_new_tokens=max_new_tokens,
                pad_token_id=tok.pad_token_id,
                **sampling,
            )
        best = min(best, time.perf_counter() - t0)
    return {
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "seconds": best,
        "tokens_per_second": batch_size * max_new_tokens / best,
        "torch_threads": torch.get_num_threads(),
    }


def summary_document(result: BakeoffResult, hf_reference: Optional[dict] = None) -> dict:
    """The JSON summary: the config, the winners, the wall time, the generation timing (and the HF
    reference), and one record per method and the control."""
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(result.config).items()}
    timing = None
    if result.timing is not None:
        timing = {**asdict(result.timing), "tokens_per_second": result.timing.tokens_per_second}
    return {
        "config": config,
        "winner": result.winner,
        "winners": result.winners,
        "seconds": result.seconds,
        "generation": timing,
        "hf_generate_reference": hf_reference,
        "summary": result.summary.to_dict(orient="records"),
    }


def report_markdown(result: BakeoffResult, hf_reference: Optional[dict] = None) -> str:
    """A Markdown report: per method and the control, the best success toward each side at
    perplexity ratio ≤ max_ratio with its interval, that strength's perplexity ratio, KL and distinct,
    the controllable range; the winners; the timing."""
    c = result.config
    lines = [
        f"# Steering bake-off: {c.concept} at {c.site.short}",
        "",
        f"{c.n_prompts} neutral prompts × {len(c.seeds)} sampling seeds (temperature {c.temperature:g}), "
        f"{c.max_new_tokens} new tokens, strengths {list(c.grid)} × ‖μ⁺ − μ⁻‖, {c.controls} random directions "
        f"in the control; {100 * c.level:g} % percentile-bootstrap intervals over prompts ({c.n_boot} resamples). "
        f"A strength counts while the perplexity ratio ≤ {c.max_ratio:g}.",
        "",
        "| method | + share | str | ppl× | KL | distinct | − share | str | ppl× | KL | distinct | range |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in result.summary.iterrows():
        cells = [method_label(r["method"]) if not r["is_control"] else "random direction (control)"]
        for t in ("positive", "negative"):
            if f"{t}_success" not in r:
                cells += ["–"] * 5
                continue
            strength = r.get(f"{t}_strength", float("nan"))
            cells += [
                interval_text(r, f"{t}_success"),
                "–" if strength != strength else f"{strength:g}",
                interval_text(r, f"{t}_ppl_ratio"),
                interval_text(r, f"{t}_kl"),
                interval_text(r, f"{t}_distinct"),
            ]
        cells.append(interval_text(r, "controllable_range"))
        lines.append("| " + " | ".join(cells) + " |")
    base = result.table[result.table["method"] == "none"].iloc[0]
    lines += [
        "",
        f"Unsteered: success {interval_text(base, 'success')}, perplexity {base['perplexity']:.2f}, "
        f"distinct {interval_text(base, 'distinct')}.",
        "",
        f"Winners (interval rule): range **{result.winners.get('range')}**, toward positive "
        f"**{result.winners.get('positive')}**, toward negative **{result.winners.get('negative')}**.",
        "",
        f"Wall time {result.seconds:.0f} s.",
    ]
    if result.timing is not None:
        t = result.timing
        lines.append(
            f"Generation: {t.decode_tokens} tokens decoded in {t.seconds:.0f} s over {t.calls} calls of up to "
            f"{t.batch_size} rows: {t.tokens_per_second:.0f} tokens/s."
        )
    if hf_reference is not None:
        lines.append(
            f"Hugging Face `generate` at batch {hf_reference['batch_size']}, {hf_reference['max_new_tokens']} tokens: "
            f"{hf_reference['tokens_per_second']:.0f} tokens/s."
        )
    return "\n".join(lines) + "\n"


def save_bakeoff(
    result: BakeoffResult,
    directory: Union[str, Path, None] = None,
    *,
    static: bool = True,
    completions: bool = True,
    hf_reference: Optional[dict] = None,
) -> dict[str, str]:
    """Write ``concepts_bakeoff_<concept>.csv`` (one row per condition, with intervals),
    ``..._completions.csv`` (unless ``completions=False``), ``..._summary.json``, ``..._report.md`` and
    the figures (HTML, plus PNG and SVG when ``static``) under ``directory`` (default
    ``workbench.paths.figures_dir()``). Returns ``{what: path}``."""
    if not isinstance(result, BakeoffResult):
        raise TypeError(f"save_bakeoff needs a BakeoffResult, got {type(result).__name__}")
    d = figures_dir(directory)
    stem = f"concepts_bakeoff_{result.config.concept}"
    out = {"table": str(save_table(result.table, d / f"{stem}.csv"))}
    if completions:
        out["completions"] = str(save_table(result.completions, d / f"{stem}_completions.csv"))
    doc = summary_document(result, hf_reference)
    out["summary"] = str(save_json(d / f"{stem}_summary.json", doc, kind=SUMMARY_KIND, version=SUMMARY_VERSION))
    out["report"] = str(save_text(d / f"{stem}_report.md", report_markdown(result, hf_reference)))
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
    completions: bool = True,
    hf_reference: bool = False,
) -> tuple[BakeoffResult, dict[str, str]]:
    """``run_bakeoff`` then ``save_bakeoff``; ``hf_reference=True`` also times Hugging Face
    ``generate`` at the bake-off's batch size (``hf_generate_speed``)."""
    result = run_bakeoff(model, config, progress=progress)
    ref = None
    if hf_reference and result.timing is not None:
        ref = hf_generate_speed(
            result.timing.batch_size, config.max_new_tokens, temperature=config.temperature, n_prompts=config.n_prompts
        )
    return result, save_bakeoff(result, directory, static=static, completions=completions, hf_reference=ref)


__all__ = [
    "SUMMARY_KIND",
    "SUMMARY_VERSION",
    "hf_generate_speed",
    "report_markdown",
    "run_and_save",
    "save_bakeoff",
    "summary_document",
]
