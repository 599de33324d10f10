"""The prompt lists workbench shares, read from the data file ``workbench/data/prompts.json``.

One list per use: ``neutral`` openings for steering evaluations, ``openings`` for the tuned-lens
corpus, the single neutral prompt of the SAE output score (Arad, Mueller & Belinkov 2025), and the
benchmark prompts. Each call returns a fresh tuple, so no caller can change what another reads.
"""

import json
from functools import cache

from .paths import data_path
from .validation import check_int


@cache
def _doc() -> dict:
    return json.loads(data_path("prompts.json").read_text())


def _take(key: str, n: int | None) -> tuple[str, ...]:
    items = tuple(_doc()[key])
    if n is None:
        return items
    check_int("n", n, min=1, max=len(items))
    return items[:n]


def neutral_prompts(n: int | None = None) -> tuple[str, ...]:
    """The first ``n`` (default all) neutral prompts for steering evaluations."""
    return _take("neutral", n)


def text_openings(n: int | None = None) -> tuple[str, ...]:
    """Short, varied English openings (the tuned-lens corpus is the model's continuations of them)."""
    return _take("openings", n)


def benchmark_prompts(n: int | None = None) -> tuple[str, ...]:
    """Prompts of unequal length for the generation benchmarks."""
    return _take("benchmark", n)


def sae_output_score_prompt() -> str:
    """The neutral prompt on which SAE output scores are measured (Arad et al. 2025)."""
    return str(_doc()["sae_output_score"])


__all__ = ["benchmark_prompts", "neutral_prompts", "sae_output_score_prompt", "text_openings"]
