"""Monitoring a concept while steering (persona vectors, Chen et al. 2025: monitoring by projection).

During generation a registry probe reads the residual stream at the concept's site **before** the
steer at that site (``when="before"``), at every position, and each token gets the projection of the
state that emitted it onto the concept direction,

    m_t = (h_{t−1} − μ₀) · v̂,      v̂ = v/‖v‖,   μ₀ = (μ⁺ + μ⁻)/2 when the vector carries its means,

so ``m > 0`` reads as the positive side of the concept and the first generated token's value is the
projection at the last prompt token (the one persona-vector work uses to predict behaviour). Reading
before the steer means the monitor sees what the text so far carries, not the vector being added at
that layer. ``monitor_correlation`` relates a completion's mean projection to an independent
judge's score (Pearson, with a bootstrap interval over prompts).

Display: ``workbench.plots.concepts.monitor_html`` (token-coloured HTML) and ``monitor_figure``.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..positions import PositionSpec
from ..registry import HookRegistry
from ..tokens import token_strings
from ..validation import check_float, check_int, check_texts
from .judges import Judge
from .stats import LEVEL, N_BOOT, Interval, bootstrap_ci
from .steering import RowGroups
from .vectors import ConceptVector

MONITOR = "_monitor"


@dataclass(frozen=True)
class Monitored:
    """One monitored completion: its generated ``tokens`` (strings) and ``projections`` ``m_t`` (one
    per token), the prompt and text, and the condition label it ran under."""

    condition: str
    prompt: str
    completion: str
    tokens: tuple[str, ...]
    projections: tuple[float, ...]
    seed: int = 0

    @property
    def mean_projection(self) -> float:
        return float(np.mean(self.projections)) if self.projections else float("nan")


def _reference(vector: ConceptVector) -> tuple[Tensor, Tensor]:
    v = vector.unit.double()
    mu0 = (vector.extras["mu_pos"] + vector.extras["mu_neg"]).double() / 2 if "mu_pos" in vector.extras else None
    return v, (torch.zeros_like(v) if mu0 is None else mu0)


def project(vector: ConceptVector, h: Tensor) -> Tensor:
    """``(h − μ₀) · v̂`` for activations ``[..., d]`` (μ₀ = 0 when the vector has no means)."""
    v, mu0 = _reference(vector)
    return (h.double() - mu0) @ v


def monitored_generate(
    model,
    prompts: Sequence[str],
    vector: ConceptVector,
    *,
    conditions: Optional[dict[str, object]] = None,
    positions: PositionSpec = "all",
    max_new_tokens: int = 24,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[Monitored]:
    """Generate every prompt under every condition (``{label: edit or None}``; default one
    unsteered condition; edits act at ``vector.site`` on ``positions``), side by side in one batch,
    with the monitor reading before the steer. Returns one ``Monitored`` per (condition, prompt), in
    condition order."""
    prompts = check_texts("prompts", prompts)
    check_int("max_new_tokens", max_new_tokens, min=1)
    check_float("temperature", temperature, min=0.0)
    if not isinstance(vector, ConceptVector):
        raise TypeError(f"vector must be a ConceptVector, got {type(vector).__name__}")
    vector.check_model(model)
    conditions = {"unsteered": None} if conditions is None else dict(conditions)
    if not conditions:
        raise ValueError("monitored_generate needs at least one condition")
    labels = list(conditions)
    n = len(prompts)
    reg = HookRegistry(model)
    reg.probe(MONITOR, vector.site, positions="all", reduce=None, when="before", device="cpu")
    if any(e is not None for e in conditions.values()):
        reg.steer(
            "_conditions",
            vector.site,
            RowGroups([conditions[k] for k in labels], [n] * len(labels)),
            positions=positions,
        )
    gen = reg.generate(list(prompts) * len(labels), max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    states = reg.records[MONITOR]
    rows = states if isinstance(states, list) else list(states.unbind(0))
    steps = gen.new_tokens.shape[1]
    new_mask = gen.attention_mask[:, -steps:]
    eos = model.tokenizer.eos_token_id
    out = []
    for r, h in enumerate(rows):
        ids = [t for t, m in zip(gen.new_tokens[r].tolist(), new_mask[r].tolist()) if m]
        if ids and ids[-1] == eos:
            ids = ids[:-1]
        p = int(gen.prompt_lengths[r])
        emitting = h[p - 1 : p - 1 + len(ids)]  # the state at position t−1 emitted token t
        proj = project(vector, emitting).tolist() if len(ids) else []
        out.append(
            Monitored(
                labels[r // n], prompts[r % n], gen.completions[r], tuple(token_strings(model, ids)), tuple(proj), seed
            )
        )
    return out


def monitor_table(monitored: Sequence[Monitored], judge: Optional[Judge] = None) -> pd.DataFrame:
    """One row per completion: condition, seed, prompt index, prompt, completion, n_tokens,
    mean/first/last projection, and (with ``judge``) the judge's score and hit."""
    prompts = list(dict.fromkeys(m.prompt for m in monitored))
    rows = []
    for m in monitored:
        row = {
            "condition": m.condition,
            "seed": m.seed,
            "prompt_index": prompts.index(m.prompt),
            "prompt": m.prompt,
            "completion": m.completion,
            "n_tokens": len(m.tokens),
            "mean_projection": m.mean_projection,
            "first_projection": m.projections[0] if m.projections else float("nan"),
            "last_projection": m.projections[-1] if m.projections else float("nan"),
        }
        if judge is not None:
            row["score"], row["hit"] = judge.score(m.completion), judge.hit(m.completion)
        rows.append(row)
    return pd.DataFrame(rows)


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r over every unit and sample: ``x, y`` are ``[B, units, samples]`` → ``[B]``."""
    x = x.reshape(x.shape[0], -1)
    y = y.reshape(y.shape[0], -1)
    ok = np.isfinite(x) & np.isfinite(y)
    n = ok.sum(1)
    xm = np.where(ok, x, 0).sum(1) / n
    ym = np.where(ok, y, 0).sum(1) / n
    dx, dy = np.where(ok, x - xm[:, None], 0), np.where(ok, y - ym[:, None], 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (dx * dy).sum(1) / np.sqrt((dx * dx).sum(1) * (dy * dy).sum(1))


def monitor_correlation(
    table: pd.DataFrame,
    x: str = "mean_projection",
    y: str = "score",
    *,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """Pearson correlation between columns ``x`` and ``y`` across the completions of ``table``, with a
    percentile-bootstrap interval resampling prompts (each prompt's seeds stay together). Needs the
    same number of completions per prompt."""
    for c in (x, y, "prompt_index"):
        if c not in table.columns:
            raise ValueError(f"monitor_correlation: the table lacks column {c!r}")
    per = table.groupby("prompt_index").size()
    if per.nunique() != 1:
        raise ValueError(f"every prompt needs the same number of completions, got {per.to_dict()}")
    t = table.sort_values(["prompt_index", "seed"], kind="stable")
    k = int(per.iloc[0])
    xs = t[x].to_numpy(float).reshape(-1, k)
    ys = t[y].to_numpy(float).reshape(-1, k)
    return bootstrap_ci(_pearson, xs, ys, n_boot=n_boot, level=level, seed=seed)


__all__ = ["Monitored", "monitor_correlation", "monitor_table", "monitored_generate", "project"]
