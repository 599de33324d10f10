"""Circuits: direct logit attribution and the residual decomposition (``dla``); attention patterns
and previous-token / duplicate-token / induction head scores (``heads``); path patching, batched
(``path_patching``, with senders and receivers from ``nodes``); edge attribution patching (EAP,
EAP-IG, EAP-RelP; ``edges``) on the graph of ``graph``, and circuits with their faithfulness
(``faithfulness``); function vectors (``function_vectors``); patchscopes (``patchscopes``). Figures are in
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
from .edges import METHODS, EdgeScores, edge_scores, edge_scores_task
from .faithfulness import FaithfulnessCurve, circuit_metric, default_ks, faithfulness_curve
from .function_vectors import FV_TASKS, FunctionVectorResult, run_function_vectors
from .graph import Graph, graph_blocker, split_inputs
from .heads import (
    HEAD_KINDS,
    AttentionPatterns,
    HeadScores,
    attention_patterns,
    detection_pattern,
    head_scores,
    induction_scores,
    pattern_score,
    repeated_random_tokens,
)
from .nodes import Receiver, Sender, reaches
from .patchscopes import IDENTITY_PROMPT, PatchscopeReading, patchscope
from .path_patching import PathPatching, PathPatchingMatrix, path_patch, path_patch_matrix, path_patch_task

__all__ = [
    "FV_TASKS",
    "HEAD_KINDS",
    "IDENTITY_PROMPT",
    "METHODS",
    "AttentionPatterns",
    "Component",
    "EdgeScores",
    "FaithfulnessCurve",
    "FunctionVectorResult",
    "Graph",
    "HeadScores",
    "LogitAttribution",
    "PatchscopeReading",
    "PathPatching",
    "PathPatchingMatrix",
    "Receiver",
    "ResidualDecomposition",
    "Sender",
    "answer_direction",
    "attention_patterns",
    "circuit_metric",
    "decompose_residual",
    "default_ks",
    "detection_pattern",
    "dla",
    "dla_blocker",
    "dla_task",
    "edge_scores",
    "edge_scores_task",
    "faithfulness_curve",
    "graph_blocker",
    "head_scores",
    "induction_scores",
    "logit_attribution",
    "patchscope",
    "path_patch",
    "path_patch_matrix",
    "path_patch_task",
    "pattern_score",
    "reaches",
    "repeated_random_tokens",
    "run_function_vectors",
    "split_inputs",
]
