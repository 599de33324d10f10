"""Nodes of a circuit: the components that write to the residual stream (senders: the embeddings,
attention heads, MLPs) and the inputs that read from it (receivers: a head's query, key or value
input, an MLP's input, the logits).

Text forms: senders ``"embed"``, ``"L9H6"`` (layer 9, head 6), ``"MLP3"``; receivers ``"L9H6.q"``,
``"L9H6.k"``, ``"L9H6.v"``, ``"MLP3"`` (its input) and ``"logits"``. A ``(layer, head)`` pair is a
head. With grouped-query attention (``n_key_value_heads < n_heads``) the key and value inputs are
shared by the query heads of a group, so a ``.k``/``.v`` receiver names the *key/value head*
(``0..n_key_value_heads−1``), and its effect is that of the whole group's keys or values.
"""

import re
from dataclasses import dataclass
from typing import Optional, Union

from ..validation import check_choice, check_int

SENDER_KINDS = ("embed", "head", "mlp")
RECEIVER_KINDS = ("q", "k", "v", "mlp", "logits")
_HEAD = re.compile(r"^L(\d+)H(\d+)$")
_MLP = re.compile(r"^MLP(\d+)$")


def n_kv_heads(model) -> int:
    return model.cfg.n_key_value_heads or model.cfg.n_heads


@dataclass(frozen=True, order=True)
class Sender:
    """A component whose output is added to the residual stream."""

    kind: str
    layer: Optional[int] = None  # None for the embeddings
    head: Optional[int] = None

    def __post_init__(self) -> None:
        check_choice("Sender.kind", self.kind, SENDER_KINDS)
        if self.kind == "embed":
            if self.layer is not None or self.head is not None:
                raise ValueError("the embed sender has no layer or head")
            return
        check_int("Sender.layer", self.layer, min=0)
        if self.kind == "head":
            check_int("Sender.head", self.head, min=0)
        elif self.head is not None:
            raise ValueError(f"an MLP sender has no head, got head={self.head!r}")

    @property
    def label(self) -> str:
        return {"embed": "embed", "head": f"L{self.layer}H{self.head}", "mlp": f"MLP{self.layer}"}[self.kind]

    def __str__(self) -> str:
        return self.label

    @property
    def order(self) -> float:
        """Where the component writes, in units of half layers: embed −1, attention L → L, MLP L → L + ½."""
        if self.layer is None:  # the embeddings
            return -1.0
        return self.layer + (0.5 if self.kind == "mlp" else 0.0)

    @classmethod
    def parse(cls, spec: Union[str, tuple, "Sender"], model=None) -> "Sender":
        if isinstance(spec, Sender):
            out = spec
        elif isinstance(spec, tuple) and len(spec) == 2:
            out = cls("head", spec[0], spec[1])
        elif isinstance(spec, str):
            if spec == "embed":
                out = cls("embed")
            elif m := _HEAD.match(spec):
                out = cls("head", int(m.group(1)), int(m.group(2)))
            elif m := _MLP.match(spec):
                out = cls("mlp", int(m.group(1)))
            else:
                raise ValueError(f"unknown sender {spec!r}; use 'embed', 'L<layer>H<head>' or 'MLP<layer>'")
        else:
            raise TypeError(f"a sender is a Sender, a string such as 'L9H6' or a (layer, head) pair, got {spec!r}")
        if model is not None:
            out.check(model)
        return out

    def check(self, model) -> "Sender":
        cfg = model.cfg
        if self.layer is not None and self.layer >= cfg.n_layers:
            raise ValueError(f"sender {self.label}: layer {self.layer} is outside 0..{cfg.n_layers - 1}")
        if self.head is not None and self.head >= cfg.n_heads:
            raise ValueError(f"sender {self.label}: head {self.head} is outside 0..{cfg.n_heads - 1}")
        if self.kind == "mlp" and cfg.attn_only:
            raise ValueError(f"sender {self.label}: this model is attention-only (cfg.attn_only=True)")
        return self


@dataclass(frozen=True, order=True)
class Receiver:
    """An input that reads the residual stream: ``q``/``k``/``v`` of a head, an MLP, or the logits."""

    kind: str
    layer: Optional[int] = None  # None for the logits
    head: Optional[int] = None  # query head (q) or key/value head (k, v)

    def __post_init__(self) -> None:
        check_choice("Receiver.kind", self.kind, RECEIVER_KINDS)
        if self.kind == "logits":
            if self.layer is not None or self.head is not None:
                raise ValueError("the logits receiver has no layer or head")
            return
        check_int("Receiver.layer", self.layer, min=0)
        if self.kind in ("q", "k", "v"):
            check_int("Receiver.head", self.head, min=0)
        elif self.head is not None:
            raise ValueError(f"an MLP receiver has no head, got head={self.head!r}")

    @property
    def label(self) -> str:
        if self.kind == "logits":
            return "logits"
        if self.kind == "mlp":
            return f"MLP{self.layer}"
        return f"L{self.layer}H{self.head}.{self.kind}"

    def __str__(self) -> str:
        return self.label

    @property
    def order(self) -> float:
        """Where the input reads, in half layers: attention L → L, MLP L → L + ½, logits → ∞."""
        if self.layer is None:  # the logits
            return float("inf")
        return self.layer + (0.5 if self.kind == "mlp" else 0.0)

    @classmethod
    def parse(cls, spec: Union[str, "Receiver"], model=None) -> "Receiver":
        if isinstance(spec, Receiver):
            out = spec
        elif isinstance(spec, str):
            head, _, part = spec.partition(".")
            if spec == "logits":
                out = cls("logits")
            elif (m := _HEAD.match(head)) and part in ("q", "k", "v"):
                out = cls(part, int(m.group(1)), int(m.group(2)))
            elif (m := _MLP.match(head)) and part in ("", "in"):
                out = cls("mlp", int(m.group(1)))
            else:
                raise ValueError(
                    f"unknown receiver {spec!r}; use 'L<layer>H<head>.q' (or .k, .v), 'MLP<layer>' or 'logits'"
                )
        else:
            raise TypeError(f"a receiver is a Receiver or a string such as 'L9H6.q', got {spec!r}")
        if model is not None:
            out.check(model)
        return out

    def check(self, model) -> "Receiver":
        cfg = model.cfg
        if self.layer is not None and self.layer >= cfg.n_layers:
            raise ValueError(f"receiver {self.label}: layer {self.layer} is outside 0..{cfg.n_layers - 1}")
        head = -1 if self.head is None else self.head
        if self.kind == "q" and head >= cfg.n_heads:
            raise ValueError(f"receiver {self.label}: head {self.head} is outside 0..{cfg.n_heads - 1}")
        if self.kind in ("k", "v") and head >= n_kv_heads(model):
            raise ValueError(
                f"receiver {self.label}: key/value head {self.head} is outside 0..{n_kv_heads(model) - 1} "
                f"(n_key_value_heads={cfg.n_key_value_heads}; .k/.v name the key/value head)"
            )
        if self.kind == "mlp" and cfg.attn_only:
            raise ValueError(f"receiver {self.label}: this model is attention-only (cfg.attn_only=True)")
        return self


def reaches(sender: Sender, receiver: Receiver, model) -> bool:
    """Whether ``receiver`` reads what ``sender`` writes along the residual stream (a direct path
    exists). With ``parallel_attn_mlp`` a layer's MLP reads the layer's input, not its attention."""
    s, r = sender.layer, receiver.layer
    if s is None or r is None:  # the embeddings reach everything; the logits read everything
        return True
    if receiver.kind == "mlp":
        if model.cfg.parallel_attn_mlp:
            return s < r
        return s < r or (sender.kind == "head" and s == r)
    return s < r


def all_heads(model) -> list[Sender]:
    return [Sender("head", L, h) for L in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]


__all__ = ["RECEIVER_KINDS", "SENDER_KINDS", "Receiver", "Sender", "all_heads", "n_kv_heads", "reaches"]
