"""Editing the residual stream through SAE features (Arad, Mueller & Belinkov 2025).

Notation: ``x`` is the activation at the SAE's site, ``f = enc(x)`` its features, ``dec`` the
decoder, and ``ε = x − dec(enc(x))`` the SAE error. Every edit here keeps the error term: it writes
``dec(f') + ε = x + dec(f') − dec(f)`` for edited features ``f'``. Written as
``x + (dec(f') − dec(f))``, a zero edit returns ``x`` exactly, not merely up to rounding.

* :func:`add_feature` — ``x + a · d_i`` with the *decoder direction* ``d_i = dec(e_i) − dec(0)``.
  For an affine decoder this equals ``dec(f + a·e_i) + ε``, i.e. adding ``a`` to feature ``i`` in
  the SAE basis. Feature steering uses ``a = s × max activation of feature i`` (the paper sweeps
  ``s`` in ``{0.2 … 20}``) on the last prompt token and every generated token (``positions="last"``
  in ``reg.generate``).
* :func:`amplify_feature` — the paper's output-score intervention: ``f'_i = f_i + κ · max_j f_j``
  at each edited position (κ = 10), written back as ``dec(f') + ε``.
* :func:`clamp_feature` — ``f'_i = v`` (set, in the SAE basis), written back as ``dec(f') + ε``.
* :func:`generation_success` — how well steering worked: the share of generated tokens that lie in
  the feature's logit-lens set ``T_i`` (the paper's "generation success").

The pure functions take ``x`` ``[batch, ..., d_in]`` and either one feature (an int) or one
feature per batch row (a 1-d integer tensor), so a single forward pass can steer a different
feature in every row. The edits (:class:`AddFeature`, :class:`AmplifyFeature`,
:class:`ClampFeature`) wrap them for ``HookRegistry.steer``; the registry applies them only at the
selected positions.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from ..edits import EditContext
from ..positions import PositionSpec
from .loading import sae_site

FeatureIndex = Union[int, Tensor]
_STATEFUL_NORMS = ("layer_norm", "constant_norm_rescale")


def check_sae(sae) -> None:
    """Raise if the SAE's decoder is not a fixed affine map of the features (input-dependent
    normalisation) or it reshapes heads; the edits here need ``dec`` affine on ``[.., d_in]``."""
    norm = getattr(sae.cfg, "normalize_activations", "none")
    if norm in _STATEFUL_NORMS:
        raise ValueError(
            f"this SAE normalises activations with {norm!r}, which makes its decoder depend on the input; "
            "SAE feature edits need an affine decoder (normalize_activations 'none' or 'expected_average_only_in')"
        )
    if getattr(sae.cfg, "reshape_activations", "none") != "none":
        raise ValueError("SAE feature edits support SAEs on [.., d_in] activations (not hook_z head reshaping)")


def _features(sae, feature: FeatureIndex, batch: Optional[int]) -> Tensor:
    d_sae = sae.cfg.d_sae
    if isinstance(feature, bool):
        raise TypeError(f"feature must be an int or an integer tensor, got {feature!r}")
    if isinstance(feature, int):
        idx = torch.tensor([feature])
    else:
        idx = torch.as_tensor(feature)
        if idx.ndim == 0:
            idx = idx.view(1)
        if idx.is_floating_point() or idx.dtype == torch.bool or idx.ndim != 1:
            raise TypeError(
                f"feature must be an int or a 1-d integer tensor (one per row), got {idx.dtype} {tuple(idx.shape)}"
            )
        idx = idx.long()
    if idx.numel() == 0:
        raise ValueError("no feature given")
    if int(idx.min()) < 0 or int(idx.max()) >= d_sae:
        bad = idx[(idx < 0) | (idx >= d_sae)][0].item()
        raise IndexError(f"feature {bad} is out of range for an SAE with {d_sae} features (valid: 0..{d_sae - 1})")
    if batch is not None and idx.numel() not in (1, batch):
        raise ValueError(f"{idx.numel()} features given for {batch} rows; pass one feature, or one per row")
    return idx


def feature_indices(sae, features: Optional[Union[Sequence[int], Tensor]]) -> Int[Tensor, " n"]:
    """``features`` as a flat int64 tensor (default: every feature, in order), each checked to be in
    ``0..d_sae-1``."""
    if features is None:
        return torch.arange(sae.cfg.d_sae)
    idx = torch.as_tensor(features)
    if idx.is_floating_point() or idx.dtype == torch.bool:
        raise TypeError(f"features must be integer ids, got {idx.dtype}")
    idx = idx.long().flatten()
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= sae.cfg.d_sae):
        raise IndexError(f"features must be in 0..{sae.cfg.d_sae - 1}, got min {int(idx.min())}, max {int(idx.max())}")
    return idx


def _per_row(value, batch: int, ndim: int, like: Tensor, what: str) -> Tensor:
    """A scalar or a ``[batch]`` tensor, shaped to broadcast against ``[batch, ...]`` (``ndim`` dims)."""
    v = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if v.ndim == 0:
        return v
    if v.ndim != 1 or v.numel() not in (1, batch):
        raise ValueError(
            f"{what} must be a number or a 1-d tensor with one value per row ({batch}), got shape {tuple(v.shape)}"
        )
    return v.view(-1, *([1] * (ndim - 1)))


def _one_hot(idx: Tensor, shape: torch.Size, like: Tensor) -> Tensor:
    """``[batch, ..., d_sae]`` indicator of feature ``idx[b]`` (or ``idx[0]`` for every row)."""
    hot = torch.zeros(shape, dtype=like.dtype, device=like.device)
    batch, d_sae = shape[0], shape[-1]
    rows = torch.nn.functional.one_hot(
        idx.to(like.device).expand(batch) if idx.numel() == 1 else idx.to(like.device), d_sae
    )
    return hot + rows.to(like.dtype).view(batch, *([1] * (len(shape) - 2)), d_sae)


def decoder_directions(sae, features: Optional[FeatureIndex] = None, *, chunk: int = 512) -> Float[Tensor, "n d_in"]:
    """``d_i = dec(e_i) − dec(0)``: the change of the reconstruction per unit of feature ``i``
    (``W_dec[i]``, or ``W_dec[i] / ‖W_dec[i]‖`` for SAEs that rescale by decoder norm), for
    ``features`` (default: all, in order)."""
    check_sae(sae)
    idx = torch.arange(sae.cfg.d_sae) if features is None else _features(sae, features, None)
    out = []
    with torch.no_grad():
        zero = sae.decode(torch.zeros(1, sae.cfg.d_sae, dtype=sae.dtype, device=sae.device))
        for part in idx.split(chunk):
            hot = torch.nn.functional.one_hot(part, sae.cfg.d_sae).to(sae.dtype).to(sae.device)
            out.append((sae.decode(hot) - zero).float())
    return torch.cat(out)


def edit_in_sae_basis(sae, x: Tensor, f: Tensor, f_new: Tensor) -> Tensor:
    """``dec(f_new) + (x − dec(f))`` written as ``x + (dec(f_new) − dec(f))``."""
    delta = sae.decode(f_new) - sae.decode(f)
    return x + delta.to(x.device, x.dtype)


def add_feature(
    x: Float[Tensor, "batch *pos d_in"], directions: Float[Tensor, "d_sae d_in"], feature: FeatureIndex, amount
) -> Float[Tensor, "batch *pos d_in"]:
    """``x + a · d_i`` (``amount`` a number or one per row; ``feature`` an int or one per row)."""
    if x.shape[-1] != directions.shape[-1]:
        raise ValueError(
            f"activations have width {x.shape[-1]} but the SAE's decoder directions have width {directions.shape[-1]}"
        )
    idx = _features(_Size(directions.shape[0]), feature, x.shape[0])
    d = directions.to(x.device, x.dtype)[idx.to(x.device)]  # [1 or batch, d_in]
    d = d.view(d.shape[0], *([1] * (x.ndim - 2)), x.shape[-1])
    return x + _per_row(amount, x.shape[0], x.ndim, x, "amount") * d


def amplify_feature(
    sae, x: Float[Tensor, "batch *pos d_in"], feature: FeatureIndex, factor: float = 10.0
) -> Float[Tensor, "batch *pos d_in"]:
    """The paper's output-score edit: ``f'_i = f_i + κ · max_j f_j`` at every position, written back
    with the error kept: ``dec(f') + (x − dec(f))``."""
    check_sae(sae)
    idx = _features(sae, feature, x.shape[0])
    f = sae.encode(x.to(sae.device, sae.dtype))
    boost = _per_row(factor, x.shape[0], f.ndim, f, "factor") * f.max(-1, keepdim=True).values
    return edit_in_sae_basis(sae, x, f, f + _one_hot(idx, f.shape, f) * boost)


def clamp_feature(
    sae, x: Float[Tensor, "batch *pos d_in"], feature: FeatureIndex, value
) -> Float[Tensor, "batch *pos d_in"]:
    """Set feature ``i`` to ``value`` in the SAE basis, keeping the error: ``dec(f') + (x − dec(f))``."""
    check_sae(sae)
    idx = _features(sae, feature, x.shape[0])
    f = sae.encode(x.to(sae.device, sae.dtype))
    hot = _one_hot(idx, f.shape, f)
    v = _per_row(value, x.shape[0], f.ndim, f, "value")
    return edit_in_sae_basis(sae, x, f, f * (1 - hot) + hot * v)


@dataclass(frozen=True)
class _Size:
    """Stand-in exposing ``cfg.d_sae`` for index validation when only the directions are at hand."""

    d_sae: int

    @property
    def cfg(self):
        return self


# ----------------------------------------------------------------------------- registry edits


@dataclass(frozen=True, eq=False)
class AddFeature:
    """Steer: add ``amount`` of feature ``feature`` (``x + amount · d_i``; error term untouched).

    ``feature`` and ``amount`` may be per-row tensors (one feature per batch row)."""

    sae: object
    feature: FeatureIndex
    amount: object
    _dirs: Tensor = field(init=False, repr=False)
    _rows: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        idx = _features(self.sae, self.feature, None)
        a = torch.as_tensor(self.amount, dtype=torch.float32)
        if a.ndim > 1 or not torch.isfinite(a).all():
            raise ValueError(f"amount must be a finite number or a 1-d tensor, got {self.amount!r}")
        object.__setattr__(self, "_dirs", decoder_directions(self.sae, idx))
        object.__setattr__(self, "_rows", torch.arange(idx.numel()))

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        return add_feature(acts, self._dirs, self._rows, self.amount)

    def __repr__(self) -> str:
        return f"AddFeature(feature={_fmt(self.feature)}, amount={_fmt(self.amount)})"


@dataclass(frozen=True, eq=False)
class AmplifyFeature:
    """Steer: ``f_i += factor · max_j f_j`` at each edited position, error kept (output score edit)."""

    sae: object
    feature: FeatureIndex
    factor: float = 10.0

    def __post_init__(self) -> None:
        check_sae(self.sae)
        _features(self.sae, self.feature, None)

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        return amplify_feature(self.sae, acts, self.feature, self.factor)

    def __repr__(self) -> str:
        return f"AmplifyFeature(feature={_fmt(self.feature)}, factor={_fmt(self.factor)})"


@dataclass(frozen=True, eq=False)
class ClampFeature:
    """Steer: set feature ``i`` to ``value`` in the SAE basis, error kept."""

    sae: object
    feature: FeatureIndex
    value: object

    def __post_init__(self) -> None:
        check_sae(self.sae)
        _features(self.sae, self.feature, None)

    def __call__(self, acts: Tensor, ctx: EditContext) -> Tensor:
        return clamp_feature(self.sae, acts, self.feature, self.value)

    def __repr__(self) -> str:
        return f"ClampFeature(feature={_fmt(self.feature)}, value={_fmt(self.value)})"


def _fmt(v) -> str:
    if isinstance(v, Tensor):
        return f"[{v.numel()} values]" if v.numel() > 1 else f"{v.item():g}"
    return f"{v:g}" if isinstance(v, float) else str(v)


def generation_success(
    new_tokens: Int[Tensor, "batch new"], mask: Bool[Tensor, "batch new"], top_tokens: Int[Tensor, "batch k"]
) -> Float[Tensor, " batch"]:
    """Steering success (Arad et al. 2025): per row, the share of generated tokens (where ``mask``)
    that lie in that row's logit-lens set ``T_i``."""
    if new_tokens.shape != mask.shape or top_tokens.ndim != 2 or top_tokens.shape[0] != new_tokens.shape[0]:
        raise ValueError(
            f"need new_tokens and mask [batch, new] and top_tokens [batch, k], got {tuple(new_tokens.shape)}, "
            f"{tuple(mask.shape)} and {tuple(top_tokens.shape)}"
        )
    top_tokens = top_tokens.to(new_tokens.device)
    hit = (new_tokens[:, :, None] == top_tokens[:, None, :]).any(-1) & mask.bool()
    return hit.sum(1).float() / mask.bool().sum(1).clamp_min(1).float()


def steer_feature(
    reg,
    sae,
    feature: FeatureIndex,
    strength,
    *,
    max_activation,
    name: Optional[str] = None,
    positions: PositionSpec = "last",
) -> str:
    """Register on ``reg`` the paper's feature steering: add ``s × max_activation`` of feature ``i``
    (``x + s · a_max,i · d_i``) at the SAE's site. With the default ``positions="last"``,
    ``reg.generate`` edits the last prompt token and every generated token. Returns the steer's name."""
    site = sae_site(sae, reg.model)
    amount = torch.as_tensor(strength, dtype=torch.float32) * torch.as_tensor(max_activation, dtype=torch.float32)
    if name is None:
        name = f"sae-feature-{_fmt(feature)}@{site.short}"
    reg.steer(name, site, AddFeature(sae, feature, amount), positions=positions)
    return name
