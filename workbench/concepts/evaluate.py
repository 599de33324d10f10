"""Measuring steering with judges that the steered model cannot fool.

For each steering condition (method, direction, strength) the same neutral prompts are completed
(greedy or seeded sampling, KV-cached ``HookRegistry.generate``) and scored by:

- **success**: the share of completions an independent judge (``judges.py``) counts as showing the
  concept's positive side (e.g. VADER-positive share);
- **fluency**: perplexity of the completion tokens under the *unsteered* model,
  ``exp(mean over completion tokens of −log p(tᵢ | t_<i))``, pooled over the condition's completions;
- **side effects**: ``KL(p_unsteered ‖ p_steered)`` of the next-token distribution after each neutral
  prompt, averaged over prompts;
- **distinct**: unique completion tokens / completion tokens (low values flag repetition loops, which
  perplexity rewards).

Conditions run side by side in one batch (``RowGroups``), so a grid costs a few generation calls.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..positions import PositionSpec
from ..registry import HookRegistry
from ..sites import Site
from ..tokens import pad_rows, pad_token_id
from .judges import Judge, judge_for
from .steering import RowGroups, steering_edit
from .vectors import ConceptVector

NEUTRAL_PROMPTS = (
    "Yesterday I",
    "My neighbour told me that",
    "The meeting this morning",
    "When I opened the door,",
    "Here is what happened last week:",
    "The letter said",
    "On my way to work,",
    "I have been thinking about",
    "The report describes",
    "After the phone call, she",
    "This is a story about",
    "Tomorrow we will",
    "He looked at the box and",
    "In the afternoon, the children",
    "The new building on the corner",
    "Let me tell you about my weekend.",
    "The email from Sam",
    "At the end of the day,",
    "Our plan for Monday is",
    "She picked up the phone and",
)


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


def _rows(model, prompts: Sequence[str]) -> list[list[int]]:
    tok = model.tokenizer
    return [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]


def completion_nll(
    model, prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]], *, batch_size: int = 32
) -> list[tuple[float, int]]:
    """Per row: (sum of −log p(completion token | everything before it), number of completion tokens)
    under the unsteered model. Rows with an empty completion give (0.0, 0)."""
    reg = HookRegistry(model)  # nothing registered: a plain forward through the registry
    out: list[tuple[float, int]] = [(0.0, 0)] * len(prompt_ids)
    todo = [i for i in range(len(prompt_ids)) if len(completion_ids[i]) > 0]
    pad = pad_token_id(model)
    with torch.no_grad():
        for start in range(0, len(todo), batch_size):
            idx = todo[start : start + batch_size]
            rows = [list(prompt_ids[i]) + list(completion_ids[i]) for i in idx]
            batch = pad_rows(rows, pad, padding_side="right")
            logits = reg.run(batch, need_logits=True)
            logp = F.log_softmax(logits.float(), -1)
            for j, i in enumerate(idx):
                p, c = len(prompt_ids[i]), len(completion_ids[i])
                targets = torch.tensor(rows[j][p : p + c])
                lp = logp[j, p - 1 : p + c - 1].gather(-1, targets[:, None])[:, 0]
                out[i] = (float(-lp.sum()), c)
    return out


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
    one row per condition, and one row per (condition, prompt) with the text and its scores."""
    site = Site.parse(site, model)
    prompts = list(prompts)
    if not prompts:
        raise ValueError("run_conditions needs at least one prompt")
    if not conditions:
        raise ValueError("run_conditions needs at least one condition")
    if not any(c.edit is None for c in conditions):
        conditions = [Condition("none", "none", 0.0, None)] + list(conditions)
    n = len(prompts)
    per_call = max(1, max_rows // n)
    records = []
    prompt_ids = _rows(model, prompts)
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
    nll = completion_nll(model, [prompt_ids[prompts.index(p)] for p in table["prompt"]], list(table["_ids"]))
    table["nll_sum"] = [a for a, _ in nll]
    table["n_tokens"] = [b for _, b in nll]
    table["distinct"] = [len(set(ids)) / len(ids) if ids else float("nan") for ids in table["_ids"]]
    table["score"] = [judge.score(t) for t in table["completion"]]
    table["hit"] = [judge.hit(t) for t in table["completion"]]
    table = table.drop(columns="_ids")
    # side effects: KL(unsteered || steered) of the next-token distribution after each prompt
    logp = []
    for chunk in chunks:
        logp.append(next_token_logprobs(model, site, chunk, prompts, positions))
    logp = torch.cat(logp, 0)
    base = [i for i, c in enumerate(conditions) if c.edit is None][0]
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
    """``table``: one row per condition (tidy); ``completions``: one row per generated text; ``figures``."""

    table: pd.DataFrame
    completions: pd.DataFrame
    figures: dict = field(default_factory=dict)


def steering_sweep(
    model,
    vectors: Union[ConceptVector, Sequence[ConceptVector]],
    coefficients: Union[Sequence[float], dict[str, Sequence[float]]],
    *,
    concept: Optional[str] = None,
    judge: Optional[Judge] = None,
    toward: Sequence[str] = ("positive", "negative"),
    prompts: Sequence[str] = NEUTRAL_PROMPTS,
    max_new_tokens: int = 24,
    positions: PositionSpec = "all",
    temperature: float = 0.0,
    seed: int = 0,
    max_rows: int = 160,
    progress: bool = True,
) -> SweepResult:
    """Run a coefficient grid for one or more concept vectors (all at the same site) over a fixed set
    of neutral prompts with a fixed seed. ``coefficients`` is one grid for every method or a dict
    ``{method: grid}`` (strengths as in ``steering_edit``). Returns a tidy table
    (method, toward, strength, success, perplexity, perplexity_ratio, kl, distinct, n, judge) and
    dose-response figures."""
    from .plots import dose_response_figure

    vecs = [vectors] if isinstance(vectors, ConceptVector) else list(vectors)
    if not vecs:
        raise ValueError("steering_sweep needs at least one ConceptVector")
    sites = {v.site for v in vecs}
    if len(sites) != 1:
        raise ValueError(f"steering_sweep compares vectors at one site, got {sorted(s.short for s in sites)}")
    name = concept or vecs[0].concept
    judge = judge or judge_for(name)
    for t in toward:
        if t not in ("positive", "negative"):
            raise ValueError(f"toward must hold 'positive'/'negative', got {t!r}")
    conds = [Condition("none", "none", 0.0, None)]
    for v in vecs:
        grid = coefficients.get(v.method) if isinstance(coefficients, dict) else coefficients
        if grid is None:
            raise ValueError(f"no coefficient grid for method {v.method!r}; the dict has {sorted(coefficients)}")
        for t in toward:
            for s in grid:
                conds.append(Condition(v.method, t, float(s), steering_edit(v, float(s), t)))
    summary, table = run_conditions(
        model,
        next(iter(sites)),
        conds,
        prompts,
        judge,
        max_new_tokens=max_new_tokens,
        positions=positions,
        temperature=temperature,
        seed=seed,
        max_rows=max_rows,
        progress=progress,
    )
    summary.insert(0, "concept", name)
    summary.insert(1, "site", next(iter(sites)).short)
    result = SweepResult(summary, table)
    result.figures["dose_response"] = dose_response_figure(
        summary, title=f"Dose-response: {name} at {next(iter(sites)).short}"
    )
    return result
