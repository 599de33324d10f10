"""Circuits: direct logit attribution and the residual decomposition (``dla``). Figures are in
``workbench.plots.circuits``; runners that write files in ``workbench.experiments.circuits``."""

from .dla import (
    Component,
    LogitAttribution,
    ResidualDecomposition,
    answer_direction,
    decompose_residual,
    dla,
    dla_blocker,
    dla_task,
    logit_attribution,
)

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
