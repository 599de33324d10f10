"""The norm-matched random-direction control of a steering comparison.

A method's effect is only interesting beyond what *any* push of the same length does. The control
adds ``±strength·‖r‖·û`` with ``û`` a uniformly random unit direction (a normalised standard Gaussian
vector, uniform on the sphere) and ``‖r‖ = ‖μ⁺ − μ⁻‖`` the push length every method's strength is
measured in (``method.push_length``), so each control condition moves the activation exactly as far
as an additive method at the same strength. Several draws ``û₁ … û_K`` are run and pooled per
(direction, strength); "toward negative" uses ``−û_k``.
"""

import torch
from jaxtyping import Float
from torch import Tensor

from ..edits import AddVector
from ..validation import check_float, check_int

CONTROL_METHOD = "random"  # the method name of control rows in every steering table
CONTROL_LABEL = "random direction (control)"


def random_unit_directions(d_model: int, n: int, seed: int = 0) -> Float[Tensor, "n d_model"]:
    """``n`` unit vectors drawn uniformly on the sphere (normalised Gaussians, own seeded generator)."""
    check_int("d_model", d_model, min=1)
    check_int("n", n, min=1)
    check_int("seed", seed, min=0)
    g = torch.randn(n, d_model, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (g / g.norm(dim=1, keepdim=True)).float()


def control_edits(
    d_model: int, length: float, strengths, toward, n_draws: int, seed: int = 0
) -> list[tuple[str, float, int, AddVector]]:
    """``(toward, strength, draw, edit)`` for every draw, direction and strength: the edit adds
    ``±strength·length·û_draw``."""
    length = check_float("length", length, min=0.0, min_open=True)
    dirs = random_unit_directions(d_model, n_draws, seed)
    out = []
    for k in range(n_draws):
        for t in toward:
            sign = 1.0 if t == "positive" else -1.0
            for s in strengths:
                s = check_float("strength", s, min=0.0, min_open=True)
                out.append((t, s, k, AddVector(dirs[k] * length, sign * s)))
    return out


__all__ = ["CONTROL_LABEL", "CONTROL_METHOD", "control_edits", "random_unit_directions"]
