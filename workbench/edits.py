"""Edits: pure functions ``(activations, context) -> new activations`` that steers apply.

An edit never changes its input in place; the registry checks this, and blends the edit's output
into the activation only at the positions the steer selected. Built-in edits here are the basic
geometric ones, and ``Compose``, which applies several in order:

- ``AddVector(v, α)``: ``h ← h + α·v`` (a translation; ActAdd, Turner et al. 2023; CAA, Rimsky et al. 2024);
- ``ProjectOut(r)``: ``h ← h − r̂ r̂ᵀ h`` (directional ablation, Arditi et al. 2024);
- ``Clamp(r, c)``: ``h ← h + (c − r̂ᵀh) r̂``;
- ``Replace(x)``: ``h ← x``;
- ``Compose(e₁, …, eₙ)``: ``h ← eₙ(… e₁(h))``, e.g. ablate-then-add ``Compose(ProjectOut(r), AddVector(r, α))``.

Concept (GCAV, ACE) and SAE-feature edits live with their modules and use the same interface.
"""

from dataclasses import dataclass, field
from typing import Optional, Protocol, runtime_checkable

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from .sites import Site


@dataclass(frozen=True)
class EditContext:
    """What an edit may want to know about the current forward chunk.

    ``mask[b, j]`` says whether chunk column ``j`` of row ``b`` is selected; ``abs_pos`` gives each
    column's absolute unpadded position (-1 for padding); ``prompt_len`` each row's prompt length;
    ``step`` is the generation step (0 = prompt pass) or None outside generation."""

    site: Site
    mask: Bool[Tensor, "batch pos"]
    abs_pos: Int[Tensor, "batch pos"]
    seq_len: Int[Tensor, " batch"]
    prompt_len: Int[Tensor, " batch"]
    step: Optional[int] = None


@runtime_checkable
class Edit(Protocol):
    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor: ...


def as_vector(vector, name: str) -> Tensor:
    """``vector`` as a finite 1-d tensor (detached, dtype kept); the error names ``name``."""
    v = torch.as_tensor(vector).detach()
    if v.ndim != 1 or v.numel() == 0:
        raise ValueError(f"{name} must be a 1-d vector, got shape {tuple(v.shape)}")
    if not torch.isfinite(v).all():
        raise ValueError(f"{name} has non-finite entries")
    return v


def as_direction(vector, name: str, verb: str) -> Tensor:
    """A finite, non-zero 1-d vector (a direction needs a length to normalise)."""
    r = as_vector(vector, name)
    if r.norm() == 0:
        raise ValueError(f"{name} is the zero vector; it has no direction to {verb}")
    return r


def check_width(vector: Tensor, acts: Tensor, what: str) -> None:
    if acts.shape[-1] != vector.shape[0]:
        raise ValueError(
            f"{what} has shape {tuple(vector.shape)} but the activations at this site have shape "
            f"{tuple(acts.shape)} (last dim {acts.shape[-1]})"
        )


def add_vector(h: Float[Tensor, "... d"], v: Float[Tensor, " d"], coeff: float) -> Float[Tensor, "... d"]:
    """``h + coeff · v`` (ActAdd, Turner et al. 2023; CAA, Rimsky et al. 2024)."""
    return h + coeff * v.to(h.dtype)


def project_out(h: Float[Tensor, "... d"], r: Float[Tensor, " d"]) -> Float[Tensor, "... d"]:
    """Directional ablation ``h − r̂ r̂ᵀ h`` (Arditi et al. 2024)."""
    r_hat = (r / r.norm()).to(h.dtype)
    return h - (h @ r_hat)[..., None] * r_hat


def clamp_along(h: Float[Tensor, "... d"], r: Float[Tensor, " d"], value: float) -> Float[Tensor, "... d"]:
    """Set the component along ``r̂`` to ``value``: ``h + (value − r̂ᵀh) r̂``."""
    r_hat = (r / r.norm()).to(h.dtype)
    return h + (value - h @ r_hat)[..., None] * r_hat


@dataclass(frozen=True)
class AddVector:
    """Add ``coeff · vector`` to the activation."""

    vector: Tensor
    coeff: float = 1.0
    _v: Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_v", as_vector(self.vector, "AddVector.vector"))

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        check_width(self._v, acts, "AddVector.vector")
        return add_vector(acts, self._v.to(acts.device), self.coeff)

    def __repr__(self) -> str:
        return f"AddVector(|v|={self._v.norm():.3g}, coeff={self.coeff:g})"


@dataclass(frozen=True)
class ProjectOut:
    """Remove the component along ``direction`` (directional ablation)."""

    direction: Tensor
    _r: Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_r", as_direction(self.direction, "ProjectOut.direction", "remove"))

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        check_width(self._r, acts, "ProjectOut.direction")
        return project_out(acts, self._r.to(acts.device))

    def __repr__(self) -> str:
        return f"ProjectOut(d={self._r.shape[0]})"


@dataclass(frozen=True)
class Clamp:
    """Clamp the component along ``direction`` to ``value``."""

    direction: Tensor
    value: float
    _r: Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_r", as_direction(self.direction, "Clamp.direction", "clamp"))

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        check_width(self._r, acts, "Clamp.direction")
        return clamp_along(acts, self._r.to(acts.device), self.value)

    def __repr__(self) -> str:
        return f"Clamp(value={self.value:g})"


@dataclass(frozen=True)
class Replace:
    """Replace the activation with fixed values (broadcast over batch/pos), e.g. a cached clean run."""

    values: Tensor

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        v = self.values.to(acts.device, acts.dtype)
        try:
            return torch.broadcast_to(v, acts.shape).clone()
        except RuntimeError:
            raise ValueError(
                f"Replace.values has shape {tuple(v.shape)}, which does not broadcast to the activations' "
                f"shape {tuple(acts.shape)}"
            ) from None


class Compose:
    """Apply edits in order: ``Compose(e₁, e₂, …, eₙ)(h) = eₙ(… e₂(e₁(h)))``, every one with the same
    context. Order matters whenever the edits do not commute: ``Compose(ProjectOut(r), AddVector(r, α))``
    leaves ``α·r`` along ``r̂`` (ablate, then induce; Arditi et al. 2024), while
    ``Compose(AddVector(r, α), ProjectOut(r))`` removes the added push again. Nested ``Compose`` edits
    are flattened; the steer sees one edit, so one set of positions applies to every step."""

    __slots__ = ("_edits",)

    def __init__(self, *edits: Edit) -> None:
        flat: list = []
        for i, e in enumerate(edits):
            if isinstance(e, Compose):
                flat.extend(e.edits)
            elif callable(e):
                flat.append(e)
            else:
                raise TypeError(f"Compose: edit {i} must be callable (acts, ctx) -> acts, got {type(e).__name__}")
        if not flat:
            raise ValueError("Compose needs at least one edit")
        self._edits: tuple = tuple(flat)

    @property
    def edits(self) -> tuple:
        return self._edits

    def __len__(self) -> int:
        return len(self._edits)

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        for e in self._edits:
            acts = e(acts, ctx)
        return acts

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(e) for e in self._edits) + ")"
