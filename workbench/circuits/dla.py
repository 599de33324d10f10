"""Direct logit attribution (DLA) and the decomposition of the final residual into components.

The residual stream after the last block is a sum (Elhage et al. 2021, "A mathematical framework for
transformer circuits"):

    h_T = e + p + Σ_{L,h} o_{L,h} + Σ_L b_O^L + Σ_L m_L,      o_{L,h} = z_{L,h} · W_O^{L,h}

with ``e`` the token embedding, ``p`` the learned positional embedding (where the config adds one to
the residual), ``z_{L,h}`` head h's attention-weighted values (``hook_z``), ``b_O^L`` the attention
output bias and ``m_L`` the MLP output (its biases included). The logit of token ``a`` is
``LN_f(h_T) · W_U[:, a] + b_U[a]``. With the final norm's scale ``σ_f`` *frozen* at its value in the
actual run, ``LN_f`` is linear, so each component ``c`` gets the attribution (TransformerLens'
``ActivationCache.logit_attrs``)

    DLA(c) = (c − mean(c)) / σ_f · (w_f ⊙ u)         (LayerNorm: centre c; RMSNorm: no centring)

for an answer direction ``u = W_U[:, a] − W_U[:, b]`` (a logit difference) or ``u = W_U[:, a]`` (one
token's logit). The attributions plus the constant ``b_f · u + b_U[a] − b_U[b]`` add up to the
model's actual logit difference *exactly* (float rounding only): freezing ``σ_f`` is not an error in
the sum; it is the choice that makes the sum linear. What it does approximate is each component's
own effect — a component that changed ``σ_f`` would have a different effect if removed (that is
what activation patching measures). ``LogitAttribution.sum_error`` reports the float residue.

Refused configs (``dla_blocker`` names the field): Gemma-2's ``use_normalization_before_and_after``
(each block's attention output passes through its own RMSNorm, so it is not a sum of per-head
outputs) and ``output_logits_soft_cap`` (the logits are ``c·tanh(u/c)`` of the unembedded residual,
not linear in it). A decomposition that does not add up to the recorded residual raises rather than
returning wrong attributions.
"""

from dataclasses import dataclass
from typing import Optional

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..readout import resid_to_logits
from ..registry import HookRegistry
from ..validation import check_choice, check_int
from .checks import PositionArg, check_answers, check_positions, check_tokens, recorded

NORMS = (None, "LN", "LNPre", "RMS", "RMSPre")
KINDS = ("embed", "pos_embed", "head", "attn_bias", "mlp")


@dataclass(frozen=True)
class Component:
    """One term of the residual decomposition: ``kind`` is embed, pos_embed, head, attn_bias or mlp."""

    label: str  # e.g. "embed", "L3H5", "L3 b_O", "MLP3"
    kind: str
    layer: Optional[int] = None  # None for the embeddings
    head: Optional[int] = None  # only for kind == "head"


def dla_blocker(model) -> Optional[str]:
    """The config field that makes the final residual not a linear sum of per-component logits, or None."""
    cfg = model.cfg
    if getattr(cfg, "use_normalization_before_and_after", False):
        return (
            "use_normalization_before_and_after=True (Gemma-2): each attention and MLP output passes through its "
            "own RMSNorm (ln1_post/ln2_post) before the residual, so attn_out is not a sum of per-head outputs"
        )
    cap = getattr(cfg, "output_logits_soft_cap", -1.0)
    if cap is not None and cap > 0:
        return (
            f"output_logits_soft_cap={cap}: the logits are c·tanh(u/c) of the unembedded residual, not linear in "
            "it, so component attributions would not add up to the logit difference"
        )
    if cfg.normalization_type not in NORMS:
        return f"normalization_type={cfg.normalization_type!r}: DLA knows the final norms {NORMS}"
    return None


def _check_supported(model) -> None:
    blocker = dla_blocker(model)
    if blocker is not None:
        raise ValueError(f"direct logit attribution does not apply to this model's config: {blocker}")


def _one_per_row(positions: Tensor, seq_len: int) -> Tensor:
    mask = torch.zeros(positions.shape[0], seq_len, dtype=torch.bool)
    mask[torch.arange(positions.shape[0]), positions] = True
    return mask


@dataclass(frozen=True)
class ResidualDecomposition:
    """The final residual at one position per prompt, as a sum of ``components``.

    ``vectors[c]`` is component c's contribution ``[batch, d_model]``; ``resid`` the recorded final
    residual (``resid_post`` of the last layer); ``scale`` the final norm's frozen scale σ_f per prompt
    (1 without a norm); ``stream[L]`` the residual entering layer L (``resid_pre.L``), with the final
    residual last (``n_layers + 1`` rows)."""

    components: tuple[Component, ...]
    vectors: Float[Tensor, "component batch d_model"]
    resid: Float[Tensor, "batch d_model"]
    scale: Float[Tensor, " batch"]
    stream: Float[Tensor, "layer_plus_one batch d_model"]
    positions: Int[Tensor, " batch"]

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.components]

    @property
    def reconstruction_error(self) -> float:
        """``max |Σ_c vectors[c] − resid|`` (float rounding only)."""
        return float((self.vectors.sum(0) - self.resid).abs().max())

    def index(self, kind: str, layer: Optional[int] = None) -> list[int]:
        """Rows of components of ``kind`` (and ``layer``, if given)."""
        check_choice("kind", kind, KINDS)
        return [i for i, c in enumerate(self.components) if c.kind == kind and (layer is None or c.layer == layer)]

    def by_layer(self) -> tuple[list[str], Float[Tensor, "component batch d_model"]]:
        """Coarse terms in TransformerLens' ``decompose_resid`` order: embed, pos_embed, then per layer
        the attention output (its heads plus ``b_O``) and the MLP output."""
        labels, rows = [], []
        for kind in ("embed", "pos_embed"):
            for i in self.index(kind):
                labels.append(kind)
                rows.append(self.vectors[i])
        n_layers = self.stream.shape[0] - 1
        for L in range(n_layers):
            attn = self.index("head", L) + self.index("attn_bias", L)
            labels.append(f"{L}_attn_out")
            rows.append(self.vectors[attn].sum(0))
            mlp = self.index("mlp", L)
            if mlp:
                labels.append(f"{L}_mlp_out")
                rows.append(self.vectors[mlp[0]])
        return labels, torch.stack(rows, 0)


def decompose_residual(
    model, tokens: Int[Tensor, "batch pos"], positions: PositionArg = -1, *, atol: float = 1e-4
) -> ResidualDecomposition:
    """One forward pass (no gradients, every hook removed afterwards); the final residual at
    ``positions`` (an int for every prompt, -1 = last, or one per prompt) split into embeddings,
    each head's output ``z·W_O``, attention biases that are not zero, and each MLP's output.

    Raises if the components miss the recorded residual by more than ``atol`` × (1 + max |resid|)
    (a config whose residual is not this sum), or if ``dla_blocker`` names a config field."""
    _check_supported(model)
    tokens = check_tokens(model, tokens)
    batch, T = tokens.shape
    pos = check_positions(positions, batch, T)
    cfg = model.cfg
    n_layers = cfg.n_layers
    mask = _one_per_row(pos, T)
    has_pos = cfg.positional_embedding_type == "standard" and "hook_pos_embed" in model.hook_dict
    reg = HookRegistry(model)
    reg.probe("embed", "hook_embed", positions=mask)
    if has_pos:
        reg.probe("pos_embed", "hook_pos_embed", positions=mask)
    for L in range(n_layers):
        reg.probe(f"z{L}", f"attn.z.{L}", positions=mask)
        reg.probe(f"pre{L}", f"resid_pre.{L}", positions=mask)
        if not cfg.attn_only:
            reg.probe(f"mlp{L}", f"mlp_out.{L}", positions=mask)
    reg.probe("final", f"resid_post.{n_layers - 1}", positions=mask)
    if cfg.normalization_type is not None:
        reg.probe("scale", "ln_final.hook_scale", positions=mask)
    with torch.no_grad():
        reg.run(tokens, need_logits=False)
    rec = {k: recorded(reg, k)[:, 0] for k in reg.records}  # [batch, ...] at each prompt's position

    comps: list[Component] = [Component("embed", "embed")]
    rows: list[Tensor] = [rec["embed"]]
    if has_pos:
        comps.append(Component("pos_embed", "pos_embed"))
        rows.append(rec["pos_embed"])
    for L in range(n_layers):
        attn = model.blocks[L].attn
        heads = einops.einsum(rec[f"z{L}"], attn.W_O, "b h dh, h dh d -> h b d")
        for h in range(cfg.n_heads):
            comps.append(Component(f"L{L}H{h}", "head", L, h))
        rows.extend(heads.unbind(0))
        b_O = attn.b_O.detach()
        if bool((b_O != 0).any()):
            comps.append(Component(f"L{L} b_O", "attn_bias", L))
            rows.append(b_O.expand(batch, -1))
        if not cfg.attn_only:
            comps.append(Component(f"MLP{L}", "mlp", L))
            rows.append(rec[f"mlp{L}"])
    scale = rec["scale"].reshape(batch) if "scale" in rec else torch.ones(batch, dtype=rec["final"].dtype)
    stream = torch.stack([rec[f"pre{L}"] for L in range(n_layers)] + [rec["final"]], 0)
    out = ResidualDecomposition(tuple(comps), torch.stack(rows, 0), rec["final"], scale, stream, pos)
    err = out.reconstruction_error
    if err > atol * (1.0 + float(out.resid.abs().max())):
        raise RuntimeError(
            f"the residual decomposition misses the recorded final residual by {err:.3g}; this model's blocks add "
            "something the decomposition does not know (config not covered by DLA)"
        )
    return out


def answer_direction(
    model, correct: Int[Tensor, " batch"], wrong: Optional[Int[Tensor, " batch"]] = None
) -> tuple[Float[Tensor, "batch d_model"], Float[Tensor, " batch"]]:
    """``u = W_U[:, correct] − W_U[:, wrong]`` (or ``W_U[:, correct]`` without ``wrong``) and the
    unembedding bias difference ``b_U[correct] − b_U[wrong]``."""
    W_U, b_U = model.W_U.detach(), model.b_U.detach()
    u = W_U[:, correct].T
    bias = b_U[correct]
    if wrong is not None:
        u = u - W_U[:, wrong].T
        bias = bias - b_U[wrong]
    return u, bias


@dataclass(frozen=True)
class LogitAttribution:
    """DLA of every component onto an answer direction, per prompt.

    ``values[c, i]`` is component c's attribution for prompt i; ``constant[i]`` the part no residual
    component carries (final-norm bias and unembedding bias); ``logit_diff[i]`` the model's actual
    logit difference (or logit). ``accumulated[L]`` is the frozen-scale attribution of the residual
    entering layer L plus the constant (the last row, the final residual, equals ``logit_diff``);
    ``lens[L]`` is the same readout with the final norm's statistics recomputed from that residual (the
    logit lens, ``workbench.readout.resid_to_logits``)."""

    components: tuple[Component, ...]
    values: Float[Tensor, "component batch"]
    constant: Float[Tensor, " batch"]
    logit_diff: Float[Tensor, " batch"]
    accumulated: Float[Tensor, "layer_plus_one batch"]
    lens: Float[Tensor, "layer_plus_one batch"]
    n_layers: int
    n_heads: int
    target: str  # "logit difference" or "logit"

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.components]

    @property
    def mean(self) -> Float[Tensor, " component"]:
        return self.values.mean(1)

    @property
    def sum_error(self) -> float:
        """``max_i |Σ_c values[c, i] + constant[i] − logit_diff[i]|``: float rounding only (see module)."""
        return float((self.values.sum(0) + self.constant - self.logit_diff).abs().max())

    def head_grid(self) -> Float[Tensor, "layer head"]:
        """Mean attribution of each head over prompts, ``[n_layers, n_heads]``."""
        grid = torch.zeros(self.n_layers, self.n_heads, dtype=self.values.dtype)
        for i, c in enumerate(self.components):
            if c.kind == "head":
                grid[c.layer, c.head] = self.values[i].mean()
        return grid

    def layer_values(self) -> dict[str, Float[Tensor, " layer"]]:
        """Mean attribution per layer of the attention output (heads + b_O) and of the MLP."""
        attn = torch.zeros(self.n_layers, dtype=self.values.dtype)
        mlp = torch.zeros(self.n_layers, dtype=self.values.dtype)
        for i, c in enumerate(self.components):
            if c.kind in ("head", "attn_bias"):
                attn[c.layer] += self.values[i].mean()
            elif c.kind == "mlp":
                mlp[c.layer] += self.values[i].mean()
        return {"attn": attn, "mlp": mlp}

    def top(self, k: int = 10, *, kind: Optional[str] = "head", order: str = "abs") -> list[tuple[str, float]]:
        """The ``k`` components (of ``kind``; None = all) with the largest mean attribution:
        ``order`` = "abs" (largest magnitude), "positive" or "negative"."""
        check_int("k", k, min=1)
        check_choice("order", order, ("abs", "positive", "negative"))
        if kind is not None:
            check_choice("kind", kind, KINDS)
        rows = [(c.label, float(v)) for c, v in zip(self.components, self.mean) if kind is None or c.kind == kind]
        key = {"abs": lambda r: -abs(r[1]), "positive": lambda r: -r[1], "negative": lambda r: r[1]}[order]
        return sorted(rows, key=key)[:k]

    def to_table(self):
        """A pandas DataFrame: label, kind, layer, head, mean and std over prompts."""
        import pandas as pd

        return pd.DataFrame(
            {
                "label": self.labels,
                "kind": [c.kind for c in self.components],
                "layer": [c.layer for c in self.components],
                "head": [c.head for c in self.components],
                "mean": self.values.mean(1).tolist(),
                "std": (self.values.std(1) if self.values.shape[1] > 1 else torch.zeros(len(self.labels))).tolist(),
            }
        )


def _project(model, x: Tensor, scale: Tensor, u: Tensor) -> Tensor:
    """``(x − mean x) / σ_f · (w_f ⊙ u)`` for stacked ``x [..., batch, d_model]`` (centring only for
    LayerNorm), with σ_f ``[batch]`` and u ``[batch, d_model]``."""
    if model.cfg.normalization_type in ("LN", "LNPre"):
        x = x - x.mean(-1, keepdim=True)
    w = getattr(model.ln_final, "w", None) if model.cfg.normalization_type is not None else None
    direction = u * w.detach() if w is not None else u
    return (x * direction).sum(-1) / scale


def logit_attribution(
    model,
    decomposition: ResidualDecomposition,
    correct,
    wrong=None,
) -> LogitAttribution:
    """Project every component of ``decomposition`` onto the answer direction of ``correct`` (minus
    ``wrong``, when given) through the final norm with its scale frozen from the run."""
    if not isinstance(decomposition, ResidualDecomposition):
        raise TypeError(f"decomposition must be a ResidualDecomposition, got {type(decomposition).__name__}")
    _check_supported(model)
    if decomposition.vectors.shape[-1] != model.cfg.d_model or decomposition.stream.shape[0] != model.cfg.n_layers + 1:
        raise ValueError(
            f"this decomposition (d_model {decomposition.vectors.shape[-1]}, {decomposition.stream.shape[0] - 1} "
            f"layers) is not of this model (d_model {model.cfg.d_model}, {model.cfg.n_layers} layers)"
        )
    batch = decomposition.resid.shape[0]
    correct = check_answers(model, correct, batch, "correct")
    if wrong is not None:
        wrong = check_answers(model, wrong, batch, "wrong")
        if bool((correct == wrong).any()):
            bad = torch.nonzero(correct == wrong).flatten().tolist()
            raise ValueError(f"prompts {bad} have the same correct and wrong token; the logit difference is 0")
    dev = decomposition.vectors.device
    correct, wrong = correct.to(dev), (wrong.to(dev) if wrong is not None else None)
    with torch.no_grad():
        u, bias = answer_direction(model, correct, wrong)
        scale = decomposition.scale
        values = _project(model, decomposition.vectors, scale, u)
        b_f = getattr(model.ln_final, "b", None) if model.cfg.normalization_type is not None else None
        constant = bias + ((b_f.detach() * u).sum(-1) if b_f is not None else 0.0)
        accumulated = _project(model, decomposition.stream, scale, u) + constant
        logits = resid_to_logits(model, decomposition.stream)  # [layer + 1, batch, vocab]
        rows = torch.arange(batch, device=logits.device)
        lens = logits[:, rows, correct] - (logits[:, rows, wrong] if wrong is not None else 0.0)
    return LogitAttribution(
        components=decomposition.components,
        values=values.cpu(),
        constant=constant.cpu(),
        logit_diff=lens[-1].cpu(),
        accumulated=accumulated.cpu(),
        lens=lens.cpu(),
        n_layers=model.cfg.n_layers,
        n_heads=model.cfg.n_heads,
        target="logit difference" if wrong is not None else "logit",
    )


def dla(model, tokens: Int[Tensor, "batch pos"], correct, wrong=None, positions: PositionArg = -1) -> LogitAttribution:
    """``decompose_residual`` then ``logit_attribution``: the DLA of every head, MLP and embedding
    at ``positions`` onto ``correct − wrong`` (or onto ``correct``'s logit)."""
    tokens = check_tokens(model, tokens)
    batch = tokens.shape[0]
    correct = check_answers(model, correct, batch, "correct")
    wrong = check_answers(model, wrong, batch, "wrong") if wrong is not None else None
    return logit_attribution(model, decompose_residual(model, tokens, positions), correct, wrong)


def dla_task(model, task) -> LogitAttribution:
    """DLA on a patching ``Task``'s clean prompts at the last position, onto ``correct − wrong``."""
    for attr in ("clean", "correct", "wrong"):
        if not hasattr(task, attr):
            raise TypeError(f"task must be a workbench.patching Task, got {type(task).__name__}")
    return dla(model, task.clean, task.correct, task.wrong, positions=-1)


__all__ = [
    "Component",
    "LogitAttribution",
    "ResidualDecomposition",
    "answer_direction",
    "decompose_residual",
    "dla",
    "dla_blocker",
    "dla_task",
    "logit_attribution",
]
