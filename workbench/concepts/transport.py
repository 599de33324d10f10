"""Transport-based steering: Linear-AcT (Rodriguez et al. 2025, "Controlling language and diffusion
models by transporting activations"; METHODS.md §6).

Per unit ``j`` (each coordinate of the activation), the 1-D optimal transport map between a source
distribution ``x_j`` (activations of the concept's one side) and a target ``y_j`` (the other side) is
the monotone map ``F_y⁻¹ ∘ F_x``, which pairs equal quantiles. Linear-AcT restricts it to an affine
map: the quantiles of both samples are matched (``quantile_pairs``), and ``y_j ≈ ω_j x_j + β_j`` is
fitted by least squares on the pairs (``fit_affine_transport``):

    ω_j = cov(x̃_j, ỹ_j) / var(x̃_j),     β_j = mean(ỹ_j) − ω_j mean(x̃_j)

with ``x̃, ỹ`` the matched quantiles. For Gaussians the quantile functions are affine in each other,
so this is exactly the closed-form OT map ``ω = σ_y/σ_x``, ``β = μ_y − ω μ_x`` (the tests check it).
The map is applied with strength ``λ ∈ [0, 1]`` (``TransportEdit``):

    h_j ← (1 − λ) h_j + λ (ω_j h_j + β_j) = h_j + λ ((ω_j − 1) h_j + β_j),

optionally only where ``h_j`` lies in the source sample's range ``[min x_j, max x_j]`` (identity
outside: a map fitted on sentence activations says nothing about, e.g., the first token's attention
sink, whose residual norm is ~100× the others).

Linear-AcT transports several sites (layers); its maps are then estimated *causally*: the map at a
layer is fitted on source activations that the maps of the earlier layers have already moved
(``LinearAcT.fit_sites`` in ``methods.py``).
"""

from dataclasses import dataclass, field
from typing import Optional

import torch
from jaxtyping import Float
from torch import Tensor

from ..edits import EditContext, as_vector, check_width
from ..validation import check_float, check_int


def quantile_pairs(
    x: Float[Tensor, "n d"], y: Float[Tensor, "m d"], n_quantiles: Optional[int] = None
) -> tuple[Float[Tensor, "k d"], Float[Tensor, "k d"]]:
    """Matched per-unit quantiles of two samples: with equal sizes and no ``n_quantiles``, simply
    ``sort(x)`` and ``sort(y)`` along the sample axis; otherwise both empirical quantile functions
    (linear interpolation) at the levels ``(i + ½)/k``, ``k = n_quantiles or max(n, m)``. Float64."""
    for name, a in (("x", x), ("y", y)):
        if not isinstance(a, Tensor) or a.ndim != 2 or a.shape[0] < 2:
            raise ValueError(f"{name} must be a [n, d] tensor with n >= 2 samples, got {getattr(a, 'shape', a)}")
        if not bool(torch.isfinite(a).all()):
            raise ValueError(f"{name} holds NaN or Inf")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has {x.shape[1]} units but y has {y.shape[1]}")
    xd, yd = x.double(), y.double()
    if n_quantiles is None and x.shape[0] == y.shape[0]:
        return xd.sort(0).values, yd.sort(0).values
    k = check_int("n_quantiles", n_quantiles, min=2) if n_quantiles is not None else max(x.shape[0], y.shape[0])
    levels = (torch.arange(k, dtype=torch.float64) + 0.5) / k
    return torch.quantile(xd, levels, dim=0), torch.quantile(yd, levels, dim=0)


def fit_affine_transport(
    x: Float[Tensor, "n d"], y: Float[Tensor, "m d"], n_quantiles: Optional[int] = None
) -> tuple[Float[Tensor, " d"], Float[Tensor, " d"]]:
    """Per unit, the least-squares affine fit ``ỹ ≈ ω x̃ + β`` on matched quantiles (Linear-AcT's
    estimate of the 1-D OT map from ``x`` to ``y``). A unit whose source quantiles are constant gets
    ``ω = 1`` and ``β = mean(ỹ) − x̃`` (a translation). Float64 ``(ω, β)``."""
    xq, yq = quantile_pairs(x, y, n_quantiles)
    mx, my = xq.mean(0), yq.mean(0)
    dx, dy = xq - mx, yq - my
    var = (dx * dx).mean(0)
    cov = (dx * dy).mean(0)
    degenerate = var <= 1e-12 * (1 + mx.abs()) ** 2
    omega = torch.where(degenerate, torch.ones_like(var), cov / torch.where(degenerate, torch.ones_like(var), var))
    beta = my - omega * mx
    return omega, beta


def gaussian_transport(
    mu_x: Tensor, sigma_x: Tensor, mu_y: Tensor, sigma_y: Tensor
) -> tuple[Float[Tensor, " d"], Float[Tensor, " d"]]:
    """The closed-form 1-D OT map between ``N(μ_x, σ_x²)`` and ``N(μ_y, σ_y²)`` per unit:
    ``ω = σ_y/σ_x``, ``β = μ_y − ω μ_x``."""
    omega = torch.as_tensor(sigma_y, dtype=torch.float64) / torch.as_tensor(sigma_x, dtype=torch.float64)
    return omega, torch.as_tensor(mu_y, dtype=torch.float64) - omega * torch.as_tensor(mu_x, dtype=torch.float64)


def transport(
    h: Float[Tensor, "... d"],
    omega: Float[Tensor, " d"],
    beta: Float[Tensor, " d"],
    lam: float,
    low: Optional[Tensor] = None,
    high: Optional[Tensor] = None,
) -> Float[Tensor, "... d"]:
    """``h + λ ((ω − 1) ⊙ h + β)``, unit by unit; with ``low``/``high`` only where ``low ≤ h ≤ high``."""
    hd = h.double()
    moved = hd + lam * ((omega.to(hd) - 1) * hd + beta.to(hd))
    if low is not None and high is not None:
        inside = (hd >= low.to(hd)) & (hd <= high.to(hd))
        moved = torch.where(inside, moved, hd)
    return moved.to(h.dtype)


@dataclass(frozen=True)
class TransportEdit:
    """The Linear-AcT edit ``h_j ← (1 − λ) h_j + λ (ω_j h_j + β_j)`` with ``λ ∈ [0, 1]``; with
    ``low``/``high`` (the source sample's per-unit range) units outside it are left unchanged."""

    omega: Tensor
    beta: Tensor
    lam: float = 1.0
    low: Optional[Tensor] = None
    high: Optional[Tensor] = None
    _t: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        omega = as_vector(self.omega, "TransportEdit.omega").double()
        beta = as_vector(self.beta, "TransportEdit.beta").double()
        if omega.shape != beta.shape:
            raise ValueError(f"TransportEdit.omega has shape {tuple(omega.shape)} but beta {tuple(beta.shape)}")
        check_float("TransportEdit.lam", self.lam, min=0.0, max=1.0)
        if (self.low is None) != (self.high is None):
            raise ValueError("give TransportEdit both low and high (the source support) or neither")
        low = high = None
        if self.low is not None:
            low = as_vector(self.low, "TransportEdit.low").double()
            high = as_vector(self.high, "TransportEdit.high").double()
            if low.shape != omega.shape or high.shape != omega.shape or bool((low > high).any()):
                raise ValueError("TransportEdit.low/high must be vectors like omega with low <= high")
        object.__setattr__(self, "_t", (omega, beta, low, high))

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        omega, beta, low, high = self._t
        check_width(omega, acts, "TransportEdit.omega")
        return transport(acts, omega.to(acts.device), beta.to(acts.device), self.lam, low, high)

    def __repr__(self) -> str:
        omega = self._t[0]
        kept = "source support" if self._t[2] is not None else "everywhere"
        return f"TransportEdit(λ={self.lam:g}, mean ω={float(omega.mean()):.3g}, {kept})"


def support(x: Float[Tensor, "n d"]) -> tuple[Float[Tensor, " d"], Float[Tensor, " d"]]:
    """Per-unit ``(min, max)`` of a sample: the source support of a transport map."""
    return x.min(0).values.float(), x.max(0).values.float()


__all__ = [
    "TransportEdit",
    "fit_affine_transport",
    "gaussian_transport",
    "quantile_pairs",
    "support",
    "transport",
]
