"""The computational graph of edge-level circuits: senders → receivers along the residual stream.

Senders write to the residual stream: the embeddings (token + positional, ``resid_pre.0``), each
head's output ``o_{L,h} = z_{L,h} W_O^{L,h}`` and each MLP's output. Receivers read it: each head's
query, key and value input, each MLP's input and the logits (the final residual). Every receiver's
input is the sum of the outputs of the senders that precede it (plus biases, which no edge carries),
so an edge ``u → v`` is the term ``a_u`` inside ``v``'s input (Elhage et al. 2021; Conmy et al.
2023, ACDC; Syed et al. 2023, EAP).

Per-head inputs exist as hook points only when TransformerLens routes a copy of the residual to
every head (``cfg.use_split_qkv_input``) and to every MLP (``cfg.use_hook_mlp_in``). ``split_inputs``
turns both on for the duration of a block and restores them afterwards, even on an error; the
model's outputs are unchanged (the same ``ln1``/``W_Q`` applied per head; measured bit-identical on
the six test families). With grouped-query attention the key/value inputs are per key/value head.

Refused (``graph_blocker`` names the field): Gemma-2's ``use_normalization_before_and_after`` (a
head's contribution passes through the layer's post-attention RMSNorm together with the other
heads', so it is not one additive term) and post-norm architectures (OLMo 2/3).
"""

import contextlib
from dataclasses import dataclass
from typing import Optional

import einops
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from .nodes import Receiver, Sender, n_kv_heads, reaches


def graph_blocker(model) -> Optional[str]:
    """The config field that makes a head's output not an additive term of the residual, or None."""
    cfg = model.cfg
    if getattr(cfg, "use_normalization_before_and_after", False):
        return (
            "use_normalization_before_and_after=True (Gemma-2): each attention output passes through one RMSNorm "
            "for all heads together (ln1_post), so a head's output is not an additive edge"
        )
    from transformer_lens.components import transformer_block

    post_norm = getattr(transformer_block, "POST_NORM_ARCHITECTURES", ())  # absent in older TransformerLens
    if cfg.original_architecture in post_norm:
        return (
            f"original_architecture={cfg.original_architecture!r} is post-norm: outputs are normalised before the add"
        )
    if getattr(cfg, "use_attn_in", False):
        return "use_attn_in=True conflicts with the split per-head inputs (use_split_qkv_input) edges need"
    return None


def check_graph_model(model) -> None:
    blocker = graph_blocker(model)
    if blocker is not None:
        raise ValueError(f"edge-level circuits do not apply to this model's config: {blocker}")


@contextlib.contextmanager
def split_inputs(model):
    """Per-head q/k/v input hooks (``hook_q_input``, ``hook_k_input``, ``hook_v_input``) and MLP
    input hooks (``hook_mlp_in``) for the duration of the block; the flags are restored on exit."""
    cfg = model.cfg
    saved = (cfg.use_split_qkv_input, cfg.use_hook_mlp_in)
    try:
        cfg.use_split_qkv_input = True
        if not cfg.attn_only:
            cfg.use_hook_mlp_in = True
        yield model
    finally:
        cfg.use_split_qkv_input, cfg.use_hook_mlp_in = saved


# ----------------------------------------------------------------------------- sites of nodes
def sender_groups(model) -> list[tuple[str, Optional[int]]]:
    """Senders grouped by where they are read: ("embed", None), ("head", L), ("mlp", L) in forward order."""
    out: list[tuple[str, Optional[int]]] = [("embed", None)]
    for L in range(model.cfg.n_layers):
        out.append(("head", L))
        if not model.cfg.attn_only:
            out.append(("mlp", L))
    return out


def group_site(group: tuple[str, Optional[int]]) -> str:
    """The site whose activation gives a sender group's outputs (heads: ``z``, projected by W_O)."""
    kind, L = group
    return {"embed": "resid_pre.0", "head": f"attn.z.{L}", "mlp": f"mlp_out.{L}"}[kind]


def group_outputs(model, group: tuple[str, Optional[int]], acts: Tensor) -> Float[Tensor, "batch pos k d_model"]:
    """Each sender's residual contribution ``[batch, pos, k, d_model]`` from its group's site activation."""
    kind, L = group
    if kind == "head":
        return einops.einsum(acts, model.blocks[L].attn.W_O, "b p h dh, h dh d -> b p h d")
    return acts[:, :, None]


def receiver_site(model, kind: str, layer: Optional[int]) -> str:
    """The split-input site a receiver reads at: ``q_input.L`` … ``mlp_in.L``, the final ``resid_post``."""
    if kind == "logits":
        return f"resid_post.{model.cfg.n_layers - 1}"
    return {"q": f"q_input.{layer}", "k": f"k_input.{layer}", "v": f"v_input.{layer}", "mlp": f"mlp_in.{layer}"}[kind]


@dataclass(frozen=True)
class Graph:
    """Every sender and receiver of a model, and which edges exist (``edges[u, v]``: v reads u)."""

    senders: tuple[Sender, ...]
    receivers: tuple[Receiver, ...]
    edges: Bool[Tensor, "sender receiver"]
    groups: tuple[tuple[str, Optional[int]], ...]  # sender groups in forward order
    group_rows: tuple[tuple[int, ...], ...]  # sender rows of each group
    sites: tuple[str, ...]  # receiver sites in forward order
    site_cols: tuple[tuple[int, ...], ...]  # receiver columns of each site

    @classmethod
    def of(cls, model) -> "Graph":
        check_graph_model(model)
        cfg = model.cfg
        senders: list[Sender] = []
        rows = []
        groups = sender_groups(model)
        for kind, L in groups:
            start = len(senders)
            if kind == "embed":
                senders.append(Sender("embed"))
            elif kind == "head":
                senders += [Sender("head", L, h) for h in range(cfg.n_heads)]
            else:
                senders.append(Sender("mlp", L))
            rows.append(tuple(range(start, len(senders))))
        receivers: list[Receiver] = []
        sites, cols = [], []
        for L in range(cfg.n_layers):
            for kind, n in (("q", cfg.n_heads), ("k", n_kv_heads(model)), ("v", n_kv_heads(model))):
                start = len(receivers)
                receivers += [Receiver(kind, L, h) for h in range(n)]
                sites.append(receiver_site(model, kind, L))
                cols.append(tuple(range(start, len(receivers))))
            if not cfg.attn_only:
                sites.append(receiver_site(model, "mlp", L))
                cols.append((len(receivers),))
                receivers.append(Receiver("mlp", L))
        sites.append(receiver_site(model, "logits", None))
        cols.append((len(receivers),))
        receivers.append(Receiver("logits"))
        edges = torch.tensor([[reaches(s, r, model) for r in receivers] for s in senders], dtype=torch.bool)
        return cls(tuple(senders), tuple(receivers), edges, tuple(groups), tuple(rows), tuple(sites), tuple(cols))

    def check_model(self, model) -> "Graph":
        """This graph, if it is the graph of ``model`` (same senders and receivers), else a ValueError."""
        if not isinstance(self, Graph):
            raise TypeError(f"graph must be a Graph, got {type(self).__name__}")
        cfg = model.cfg
        n_s = 1 + cfg.n_layers * (cfg.n_heads + (0 if cfg.attn_only else 1))
        n_r = 1 + cfg.n_layers * (cfg.n_heads + 2 * n_kv_heads(model) + (0 if cfg.attn_only else 1))
        if self.edges.shape != (n_s, n_r):
            raise ValueError(
                f"this graph has {self.edges.shape[0]} senders and {self.edges.shape[1]} receivers; the model's graph "
                f"has {n_s} and {n_r} (build it with Graph.of(model))"
            )
        return self

    @property
    def n_edges(self) -> int:
        return int(self.edges.sum())

    def edge_list(self) -> list[tuple[int, int]]:
        """(sender row, receiver column) of every edge, in a fixed order (row-major)."""
        return [tuple(x) for x in torch.nonzero(self.edges).tolist()]

    def label(self, u: int, v: int) -> str:
        return f"{self.senders[u].label}->{self.receivers[v].label}"

    def check_mask(self, mask: Tensor, name: str = "mask") -> Tensor:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"{name} must be a bool tensor [sender, receiver], got {getattr(mask, 'dtype', mask)!r}")
        if mask.shape[-2:] != self.edges.shape:
            raise ValueError(f"{name} has shape {tuple(mask.shape)}; this graph's edges are {tuple(self.edges.shape)}")
        if bool((mask & ~self.edges).any()):
            raise ValueError(f"{name} selects pairs that are not edges (a receiver before its sender)")
        return mask


__all__ = [
    "Graph",
    "check_graph_model",
    "graph_blocker",
    "group_outputs",
    "group_site",
    "receiver_site",
    "sender_groups",
    "split_inputs",
]
