"""Figures of the logit and tuned lenses (``workbench.lens``): a token × layer heatmap, target-token
probability across layers, and KL to the final distribution by layer. Each returns a figure."""

from collections.abc import Mapping
from typing import Optional, Union

import plotly.graph_objects as go
import torch
from torch import Tensor

from ..lens import LensResult
from ..validation import check_int
from .style import PALETTE, style


def _check_row(result: LensResult, row: int) -> int:
    return check_int("row", row, min=0, max=len(result.tokens) - 1)


def lens_heatmap(result: LensResult, row: int = 0, *, title: Optional[str] = None) -> go.Figure:
    """Heatmap of tokens × layers: colour = probability of the lens' top token, text = that token."""
    _check_row(result, row)
    probs = result.top_probs[row, :, :, 0].numpy()
    text = [[result.top_tokens[row][li][p][0] for p in range(probs.shape[1])] for li in range(probs.shape[0])]
    xlabels = [f"{p}:{t!r}"[:18] for p, t in enumerate(result.tokens[row])]
    fig = go.Figure(
        go.Heatmap(
            z=probs,
            x=xlabels,
            y=[str(L) for L in result.layers],
            text=[[repr(t)[1:-1] for t in r] for r in text],
            texttemplate="%{text}",
            textfont=dict(size=9),
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar=dict(title="p(top)"),
            hovertemplate="layer %{y}<br>input %{x}<br>top %{text}<br>p=%{z:.3f}<extra></extra>",
        )
    )
    style(
        fig,
        title=title or f"{result.lens.capitalize()} lens: top token per layer and position",
        x="input position: token",
        y="layer (resid_post)",
        width=max(600, 70 * len(xlabels) + 150),
        height=max(420, 18 * len(result.layers) + 150),
    )
    fig.update_xaxes(tickangle=-45)
    return fig


def target_curve(
    results: Union[LensResult, Mapping[str, LensResult]],
    *,
    row: int = 0,
    position: int = -1,
    title: Optional[str] = None,
) -> go.Figure:
    """Probability of each target token across layers at ``position`` — one line per target and per
    labelled run (e.g. ``{"unsteered": r0, "steered at L6": r1}``)."""
    if isinstance(results, LensResult):
        results = {results.lens: results}
    if not results:
        raise ValueError("target_curve needs at least one LensResult")
    fig = go.Figure()
    dashes = ["solid", "dash", "dot", "dashdot"]
    for ri, (label, res) in enumerate(results.items()):
        if not res.target_ids:
            raise ValueError(f"result '{label}' has no targets; pass targets=[...] to logit_lens")
        _check_row(res, row)
        T = len(res.tokens[row])
        check_int("position", position, min=-T, max=T - 1)
        for ti, tok in enumerate(res.target_tokens):
            fig.add_trace(
                go.Scatter(
                    x=res.layers,
                    y=res.target_probs[row, :, position, ti].numpy(),
                    mode="lines+markers",
                    name=f"{tok!r} ({label})",
                    line=dict(color=PALETTE[ti % len(PALETTE)], dash=dashes[ri % len(dashes)]),
                )
            )
    style(fig, title=title or "Target-token probability across layers", x="layer (resid_post)", y="probability")
    fig.update_yaxes(range=[0, 1])
    return fig


def kl_figure(kl: Mapping[str, Tensor], *, title: Optional[str] = None) -> go.Figure:
    """KL to the final distribution per layer (nats, log scale): logit lens vs tuned lens. The last
    layer (KL 0 for both: its lens is the output) is left out of the log-scale plot."""
    if not kl:
        raise ValueError("kl_figure needs at least one {lens name: KL per layer} entry")
    fig = go.Figure()
    for i, (name, v) in enumerate(kl.items()):
        v = torch.as_tensor(v)[:-1]
        fig.add_trace(
            go.Scatter(
                x=list(range(len(v))),
                y=v.clamp(min=1e-6).numpy(),
                mode="lines+markers",
                name=f"{name} lens",
                line=dict(color=PALETTE[i % len(PALETTE)]),
            )
        )
    style(
        fig,
        title=title or "KL(final ‖ lens) by layer on held-out text (last layer: 0)",
        x="layer (resid_post)",
        y="KL (nats, log scale)",
    )
    ticks = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]
    fig.update_yaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    return fig


__all__ = ["kl_figure", "lens_heatmap", "target_curve"]
