"""TCAV (Kim et al. 2018): does moving along a concept direction raise a class score?

For an input ``x`` and a class score ``f_k`` (here: the logit of a target token at the last position),
the conceptual sensitivity is the directional derivative ``S(x) = ∇_h f_k(x) · v``. For a sequence
the activation ``h`` is every token's vector at the site; moving them all along ``v`` gives
``S(x) = Σ_t ∇_{h_t} f_k(x) · v``. The TCAV score is the fraction of inputs with ``S > 0``.

Significance (Kim et al. §3.2): train CAVs for the concept against several random counterpart sets
and "random CAVs" between two random sets; a two-sided t-test (``scipy.stats.ttest_ind``) compares the
two lists of TCAV scores. Gradients are computed once; each CAV only costs a probe fit.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from ..edits import EditContext, check_width
from ..positions import PositionSpec
from ..registry import HookRegistry
from ..sites import Site, SiteLike
from .vectors import fit_logistic


class _GradientTap:
    """An edit that adds a zero tensor which requires grad, so ``∂f/∂tap = ∂f/∂h`` at the site."""

    def __init__(self) -> None:
        self.tap: Optional[Tensor] = None

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        self.tap = torch.zeros_like(acts, requires_grad=True)
        return acts + self.tap


def class_gradients(
    model,
    inputs: Union[Sequence[str], Tensor],
    site: SiteLike,
    target_token: Union[int, str],
    *,
    positions: PositionSpec = "all",
    batch_size: int = 8,
) -> Float[Tensor, "n d"]:
    """``Σ_t ∇_{h_t} logit_k(last position)`` for each text, summed over the selected positions ``t``
    of ``site`` (``[n_inputs, d_model]``). ``inputs`` are texts (left-padded in batches) or a token-id
    tensor ``[n, pos]``; ``target_token`` is a token id or a string that must be one token."""
    site = Site.parse(site, model)
    k = _token_id(model, target_token)
    out = []
    if len(inputs) == 0:
        raise ValueError("class_gradients got no inputs")
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start : start + batch_size]
        chunk = chunk if isinstance(chunk, Tensor) else list(chunk)
        tap = _GradientTap()
        reg = HookRegistry(model)
        reg.steer("_tcav_tap", site, tap, positions=positions)
        with torch.enable_grad():
            logits = reg.run(chunk, need_logits=True, padding_side="left")
            score = logits[:, -1, k].sum()
            (grad,) = torch.autograd.grad(score, tap.tap)
        out.append(grad.sum(1).detach().float())  # padding/unselected positions have zero gradient
    return torch.cat(out, 0)


def _token_id(model, token: Union[int, str]) -> int:
    if isinstance(token, int):
        if not 0 <= token < model.cfg.d_vocab:
            raise ValueError(f"token id {token} outside the vocabulary [0, {model.cfg.d_vocab})")
        return token
    ids = model.tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(
            f"target token {token!r} is {len(ids)} tokens ({ids}); pass a string that is one token, e.g. ' good'"
        )
    return ids[0]


def tcav_score(gradients: Float[Tensor, "n d"], v: Float[Tensor, " d"]) -> float:
    """Fraction of inputs whose directional derivative ``∇f · v`` is positive (Kim et al. 2018)."""
    check_width(v, gradients, "the concept vector")
    return float((gradients.double() @ v.double() > 0).double().mean())


@dataclass
class TCAVResult:
    """TCAV scores of concept CAVs and random CAVs, and the two-sided t-test between them."""

    concept_scores: list[float]
    random_scores: list[float]
    t_statistic: float
    p_value: float
    alpha: float = 0.05

    @property
    def score(self) -> float:
        return float(np.mean(self.concept_scores))

    @property
    def significant(self) -> bool:
        return bool(self.p_value < self.alpha)

    def __repr__(self) -> str:
        return (
            f"TCAVResult(score={self.score:.3f} ± {np.std(self.concept_scores):.3f}, "
            f"random={np.mean(self.random_scores):.3f}, "
            f"t={self.t_statistic:.2f}, p={self.p_value:.3g}, significant={self.significant})"
        )


def tcav_significance(
    gradients: Float[Tensor, "n d"],
    concept_acts: Float[Tensor, "c d"],
    random_pool: Float[Tensor, "r d"],
    *,
    n_runs: int = 10,
    set_size: Optional[int] = None,
    C: float = 1.0,
    seed: int = 0,
    alpha: float = 0.05,
) -> TCAVResult:
    """Kim et al.'s significance test. For each run ``i``: draw random sets ``R_i`` and ``R'_i`` of
    ``set_size`` activations from ``random_pool``; fit a CAV for concept vs ``R_i`` and a random CAV for
    ``R'_i`` vs ``R_i``; score both with ``tcav_score``. A two-sided ``scipy.stats.ttest_ind`` compares
    the concept scores with the random scores."""
    from scipy import stats

    if n_runs < 2:
        raise ValueError(f"the t-test needs n_runs >= 2, got {n_runs}")
    size = set_size or min(len(concept_acts), len(random_pool) // 2)
    if size < 2 or 2 * size > len(random_pool):
        raise ValueError(f"random_pool has {len(random_pool)} rows; it needs at least 2 × set_size = {2 * size}")
    g = torch.Generator().manual_seed(seed)
    c_scores, r_scores = [], []
    for _ in range(n_runs):
        perm = torch.randperm(len(random_pool), generator=g)
        r1, r2 = random_pool[perm[:size]], random_pool[perm[size : 2 * size]]
        cidx = torch.randperm(len(concept_acts), generator=g)[:size]
        cav = fit_logistic(torch.cat([concept_acts[cidx], r1]), [1] * size + [0] * size, C=C).w
        rcav = fit_logistic(torch.cat([r2, r1]), [1] * size + [0] * size, C=C).w
        c_scores.append(tcav_score(gradients, cav))
        r_scores.append(tcav_score(gradients, rcav))
    if np.std(c_scores) == 0 and np.std(r_scores) == 0:
        t, p = (0.0, 1.0) if np.mean(c_scores) == np.mean(r_scores) else (float("inf"), 0.0)
    else:
        res = stats.ttest_ind(c_scores, r_scores)
        t, p = float(res.statistic), float(res.pvalue)
    return TCAVResult(c_scores, r_scores, t, p, alpha)
