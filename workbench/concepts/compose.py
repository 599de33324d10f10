"""Steering two concepts at once (van der Weij et al. 2024, "Extending activation steering to broad
skills and multiple behaviours": injecting at different layers works better than summing at one).

Three schemes combine concept A (e.g. sentiment) and concept B (e.g. English → French), each pushed
toward its positive side:

- **sum at one layer**: one ``AddVector`` of the two pushes ``s_A ‖r_A‖ v̂_A + s_B ‖r_B‖ v̂_B`` at layer L;
- **each at its own layer**: A's edit at its layer, B's edit at its layer (one condition, two sites);
- **one after the other at one site**: ``Compose(edit_A, edit_B)`` of two non-commuting edits at layer
  L (by default ACE, Marshall et al. 2024: B's projection about μ₀_B also moves whatever part of A's
  push lies along r̂_B). For additive edits composition *is* the sum, so it needs an edit that
  reads the activation.

``composition_conditions`` builds these with the single-concept baselines they are compared
against; each concept is judged on every completion (``rejudge``).
"""

from dataclasses import dataclass

import pandas as pd

from ..edits import AddVector, Compose
from .evaluate import Condition, condition_table
from .judges import Judge
from .method import push_length
from .steering import steering_edit
from .vectors import ConceptVector


@dataclass(frozen=True)
class ConceptPush:
    """One concept's vectors for the schemes: ``at_shared`` (mean difference at the shared layer),
    ``at_own`` (mean difference at its own layer), ``for_compose`` (the composed method's vector at the
    shared layer), and its strength (× ‖μ⁺ − μ⁻‖)."""

    name: str
    at_shared: ConceptVector
    at_own: ConceptVector
    for_compose: ConceptVector
    strength: float

    def __post_init__(self) -> None:
        if self.at_shared.site != self.for_compose.site:
            shared, composed = self.at_shared.site.short, self.for_compose.site.short
            raise ValueError(f"{self.name}: at_shared is at {shared} but for_compose at {composed}")


def summed_push(a: ConceptPush, b: ConceptPush) -> AddVector:
    """``AddVector(s_A ‖r_A‖ v̂_A + s_B ‖r_B‖ v̂_B)``: both mean-difference pushes as one vector."""
    va, vb = a.at_shared, b.at_shared
    total = a.strength * push_length(va) * va.unit + b.strength * push_length(vb) * vb.unit
    return AddVector(total, 1.0)


def composition_conditions(a: ConceptPush, b: ConceptPush) -> list[Condition]:
    """The unsteered baseline, each concept alone (at the shared layer, at its own layer, with the
    composed method), and the three schemes; ``method`` names the scheme, e.g. ``"sum@6"``."""
    if a.at_shared.site != b.at_shared.site:
        raise ValueError(f"the shared layer differs: {a.at_shared.site.short} vs {b.at_shared.site.short}")
    shared = a.at_shared.site
    own = (a.at_own.site, b.at_own.site)
    if own[0] == own[1]:
        raise ValueError(f"'each at its own layer' needs two different sites, got {own[0].short} twice")
    m = a.for_compose.method
    conds = [Condition("none", "none", 0.0, None)]
    for c in (a, b):
        conds.append(
            Condition(
                f"{c.name} alone@{shared.layer}",
                "positive",
                c.strength,
                {shared: steering_edit(c.at_shared, c.strength)},
            )
        )
        if c.at_own.site != shared:
            conds.append(
                Condition(
                    f"{c.name} alone@{c.at_own.site.layer}",
                    "positive",
                    c.strength,
                    {c.at_own.site: steering_edit(c.at_own, c.strength)},
                )
            )
        conds.append(
            Condition(
                f"{c.name} alone ({m})@{shared.layer}",
                "positive",
                c.strength,
                {shared: steering_edit(c.for_compose, c.strength)},
            )
        )
    conds.append(Condition(f"sum@{shared.layer}", "positive", a.strength, {shared: summed_push(a, b)}))
    conds.append(
        Condition(
            f"own layers@{own[0].layer}+{own[1].layer}",
            "positive",
            a.strength,
            {own[0]: steering_edit(a.at_own, a.strength), own[1]: steering_edit(b.at_own, b.strength)},
        )
    )
    composed = Compose(steering_edit(a.for_compose, a.strength), steering_edit(b.for_compose, b.strength))
    conds.append(Condition(f"compose ({m})@{shared.layer}", "positive", a.strength, {shared: composed}))
    return conds


def rejudge(completions: pd.DataFrame, judge: Judge, **table_options) -> pd.DataFrame:
    """The condition table (``evaluate.condition_table``) with ``judge`` scoring every completion."""
    c = completions.assign(
        score=[judge.score(t) for t in completions["completion"]],
        hit=[judge.hit(t) for t in completions["completion"]],
        judge=judge.name,
    )
    return condition_table(c, **table_options)


__all__ = ["ConceptPush", "composition_conditions", "rejudge", "summed_push"]
