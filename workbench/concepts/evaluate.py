"""Measuring steering with judges that the steered model cannot fool.

For each steering condition (method, direction, strength) the same neutral prompts are completed
(greedy or seeded sampling, KV-cached ``HookRegistry.generate``) and scored by:

- **success**: the share of completions an independent judge (``judges.py``) counts as showing the
  concept's positive side (e.g. VADER-positive share);
- **fluency**: perplexity of the completion tokens under the *unsteered* model,
  ``exp(mean over completion tokens of −log p(tᵢ | t_<i))``, pooled over the condition's completions
  (``workbench.likelihood.completion_nll``);
- **side effects**: ``KL(p_unsteered ‖ p_steered)`` of the next-token distribution after each neutral
  prompt, averaged over prompts;
- **distinct**: unique completion tokens / completion tokens (low values flag repetition loops, which
  perplexity rewards).

Conditions run side by side in one batch (``RowGroups``), so a grid costs a few generation calls.
The prompts default to ``workbench.prompts.neutral_prompts()``; figures of the results are in
``workbench.plots.concepts``.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..likelihood import completion_nll
from ..positions import PositionSpec
from ..prompts import neutral_prompts
from ..registry import HookRegistry
from ..sites import Site
from ..tokens import encode
from ..validation import check_bool, check_choice, check_float, check_int, check_texts
from .judges import Judge, judge_for
from .method import TOWARD
from .steering import RowGroups, steering_edit
from .vectors import ConceptVector

# completions are scored 32 rows per forward (the batching the bake-off numbers were measured with)
NLL_BATCH = 32


@dataclass(frozen=True)
class Condition:
    """One steering condition: ``edit`` at ``site`` (None = unsteered baseline)."""

    method: str
    toward: str
    strength: float
    edit: object = field(default=None, compare=False)

    @property
    def label(self) -> str:
        return "unsteered" if self.edit is None else f"{self.method}:{self.toward}:{self.strength:g}"


def next_token_logprobs(
    model, site: Site, conditions: Sequence[Condition], prompts: Sequence[str], positions: PositionSpec = "all"
) -> torch.Tensor:
    """``log p(next token | prompt)`` for every (condition, prompt), ``[n_conditions, n_prompts, d_vocab]``."""
    reg = HookRegistry(model)
    n = len(prompts)
    edits = [c.edit for c in conditions]
    reg.steer("_conditions", site, RowGroups(edits, [n] * len(edits)), positions=positions)
    with torch.no_grad():
        logits = reg.run(list(prompts) * len(conditions), need_logits=True, padding_side="left")
    return F.log_softmax(logits[:, -1].float(), -1).view(len(conditions), n, -1)


def run_conditions(
    model,
    site: Union[str, Site],
    conditions: Sequence[Condition],
    prompts: Sequence[str],
    judge: Judge,
    *,
    max_new_tokens: int = 24,
    positions: PositionSpec = "all",
    temperature: float = 0.0,
    seed: int = 0,
    max_rows: int = 160,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate, judge and score every condition on the same prompts. Returns ``(summary, completions)``:
    one row per condition, and one row per (condition, prompt) with the text and its scores.

    Completions are greedy (``temperature=0``) or seeded samples of ``max_new_tokens`` tokens, with
    the condition's edit applied at ``positions``; at most ``max_rows`` rows go through one
    ``generate`` call."""
    site = Site.parse(site, model)
    prompts = check_texts("prompts", prompts)
    if not isinstance(judge, Judge):
        raise TypeError(f"judge must be a Judge (see concepts.judges.judge_for), got {type(judge).__name__}")
    if len(conditions) == 0:
        raise ValueError("run_conditions needs at least one condition")
    for i, c in enumerate(conditions):
        if not isinstance(c, Condition):
            raise TypeError(f"conditions[{i}] must be a Condition, got {type(c).__name__}")
    check_int("max_new_tokens", max_new_tokens, min=1)
    check_float("temperature", temperature, min=0.0)
    check_int("seed", seed, min=0)
    check_int("max_rows", max_rows, min=1)
    check_bool("progress", progress)
    if not any(c.edit is None for c in conditions):
        conditions = [Condition("none", "none", 0.0, None), *conditions]
    n = len(prompts)
    per_call = max(1, max_rows // n)
    records = []
    prompt_ids = [encode(model, p) for p in prompts]
    chunks = [conditions[i : i + per_call] for i in range(0, len(conditions), per_call)]
    for chunk in tqdm(chunks, desc="steering conditions", disable=not progress, leave=False):
        reg = HookRegistry(model)
        reg.steer("_conditions", site, RowGroups([c.edit for c in chunk], [n] * len(chunk)), positions=positions)
        gen = reg.generate(prompts * len(chunk), max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        eos = model.tokenizer.eos_token_id
        for k, cond in enumerate(chunk):
            for j in range(n):
                row = k * n + j
                ids = [
                    t
                    for t, m in zip(
                        gen.new_tokens[row].tolist(), gen.attention_mask[row, -gen.new_tokens.shape[1] :].tolist()
                    )
                    if m
                ]
                if ids and ids[-1] == eos:
                    ids = ids[:-1]
                records.append(
                    {
                        "condition": cond.label,
                        "method": cond.method,
                        "toward": cond.toward,
                        "strength": cond.strength,
                        "prompt": prompts[j],
                        "completion": gen.completions[row],
                        "_ids": ids,
                    }
                )
    table = pd.DataFrame(records)
    nll_sum, n_tokens = completion_nll(
        model, [prompt_ids[prompts.index(p)] for p in table["prompt"]], list(table["_ids"]), batch_size=NLL_BATCH
    )
    table["nll_sum"] = nll_sum.tolist()
    table["n_tokens"] = n_tokens.tolist()
    table["distinct"] = [len(set(ids)) / len(ids) if ids else float("nan") for ids in table["_ids"]]
    table["score"] = [judge.score(t) for t in table["completion"]]
    table["hit"] = [judge.hit(t) for t in table["completion"]]
    table = table.drop(columns="_ids")
    # side effects: KL(unsteered || steered) of the next-token distribution after each prompt
    logp = []
    for chunk in chunks:
        logp.append(next_token_logprobs(model, site, chunk, prompts, positions))
    logp = torch.cat(logp, 0)
    base = next(i for i, c in enumerate(conditions) if c.edit is None)
    p0 = logp[base]
    kl = (p0.exp() * (p0 - logp)).sum(-1).mean(-1)  # [n_conditions]
    rows = []
    for i, cond in enumerate(conditions):
        sub = table[table["condition"] == cond.label]
        tokens = int(sub["n_tokens"].sum())
        rows.append(
            {
                "method": cond.method,
                "toward": cond.toward,
                "strength": cond.strength,
                "condition": cond.label,
                "success": float(sub["hit"].mean()),
                "mean_score": float(sub["score"].mean()),
                "perplexity": math.exp(sub["nll_sum"].sum() / tokens) if tokens else float("nan"),
                "kl": float(kl[i]),
                "distinct": float(sub["distinct"].mean()),
                "n": len(sub),
                "judge": judge.name,
            }
        )
    summary = pd.DataFrame(rows)
    ppl0 = float(summary.loc[[c.edit is None for c in conditions], "perplexity"].iloc[0])
    summary["perplexity_ratio"] = summary["perplexity"] / ppl0
    return summary, table


@dataclass
class SweepResult:
    """``table``: one row per condition (tidy); ``completions``: one row per generated text.
    ``workbench.plots.concepts.dose_response_figure(result.table)`` draws the table."""

    table: pd.DataFrame
    completions: pd.DataFrame


def steering_sweep(
    model,
    vectors: Union[ConceptVector, Sequence[ConceptVector]],
    coefficients: Union[Sequence[float], dict[str, Sequence[float]]],
    *,
    concept: Optional[str] = None,
    judge: Optional[Judge] = None,
    toward: Sequence[str] = TOWARD,
    prompts: Optional[Sequence[str]] = None,
    **run_options,
) -> SweepResult:
    """Run a coefficient grid for one or more concept vectors (all at the same site) over a fixed set
    of neutral prompts (default ``workbench.prompts.neutral_prompts()``) with a fixed seed.
    ``coefficients`` is one grid for every method or a dict ``{method: grid}`` (strengths as in
    ``steering_edit``); ``run_options`` go to ``run_conditions`` (``max_new_tokens``, ``positions``,
    ``temperature``, ``seed``, ``max_rows``, ``progress``). Returns a tidy table (concept, site,
    method, toward, strength, success, perplexity, perplexity_ratio, kl, distinct, n, judge)."""
    vecs = [vectors] if isinstance(vectors, ConceptVector) else list(vectors)
    if not vecs:
        raise ValueError("steering_sweep needs at least one ConceptVector")
    for i, v in enumerate(vecs):
        if not isinstance(v, ConceptVector):
            raise TypeError(f"vectors[{i}] must be a ConceptVector, got {type(v).__name__}")
    sites = {v.site for v in vecs}
    if len(sites) != 1:
        raise ValueError(f"steering_sweep compares vectors at one site, got {sorted(s.short for s in sites)}")
    (site,) = sites
    name = concept or vecs[0].concept
    judge = judge or judge_for(name)
    if isinstance(toward, str) or len(toward) == 0:
        raise ValueError(f"toward must be a non-empty sequence of 'positive'/'negative', got {toward!r}")
    for t in toward:
        check_choice("toward", t, TOWARD)
    conds = [Condition("none", "none", 0.0, None)]
    for v in vecs:
        grid = coefficients.get(v.method) if isinstance(coefficients, dict) else coefficients
        if grid is None:
            raise ValueError(f"no coefficient grid for method {v.method!r}; the dict has {sorted(coefficients)}")
        for t in toward:
            for s in grid:
                conds.append(Condition(v.method, t, float(s), steering_edit(v, float(s), t)))
    prompts = neutral_prompts() if prompts is None else prompts
    summary, table = run_conditions(model, site, conds, prompts, judge, **run_options)
    summary.insert(0, "concept", name)
    summary.insert(1, "site", site.short)
    return SweepResult(summary, table)
