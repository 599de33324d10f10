"""Patching: clean/corrupted tasks and their metric, activation patching (batched), attribution
patching (AtP) and relevance patching (RelP), and how faithful the fast estimates are to activation
patching. Every readout goes through ``workbench.readout.resid_to_logits``. Figures are in
``workbench.plots.patching``."""

from .activation import STREAMS, activation_patch, patch_task, restart_blocker
from .attribution import atp, attribution_patch, relp, relp_gradients
from .faithfulness import METHODS, FaithfulnessResult, measure_faithfulness, pearson
from .metric import LogitDiffMetric, TaskCheck, check_task, make_metric
from .rules import RelPRules, relp_blocker
from .tasks import Task, build_task, random_task

__all__ = [
    "METHODS",
    "STREAMS",
    "FaithfulnessResult",
    "LogitDiffMetric",
    "RelPRules",
    "Task",
    "TaskCheck",
    "activation_patch",
    "atp",
    "attribution_patch",
    "build_task",
    "check_task",
    "make_metric",
    "measure_faithfulness",
    "patch_task",
    "pearson",
    "random_task",
    "relp",
    "relp_blocker",
    "relp_gradients",
    "restart_blocker",
]
