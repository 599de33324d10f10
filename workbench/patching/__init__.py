"""Patching: clean/corrupted tasks and their metric, activation patching (batched; by default each
patch recomputes only positions ≥ p of blocks ≥ L against the corrupted run's cached keys and
values, ``workbench.patching.reuse``), attribution patching (AtP) and relevance patching (RelP), and
how faithful the fast estimates are to activation patching. Every readout goes through
``workbench.readout``. Figures are in ``workbench.plots.patching``."""

from .activation import (
    SCHEDULES,
    STREAMS,
    activation_patch,
    patch_schedule,
    patch_task,
    restart_blocker,
)
from .attribution import atp, attribution_patch, relp, relp_gradients
from .faithfulness import METHODS, FaithfulnessResult, measure_faithfulness, pearson
from .metric import LogitDiffMetric, TaskCheck, check_task, make_metric
from .reuse import kv_reuse_blocker, patch_flops
from .rules import RelPRules, relp_blocker
from .tasks import Task, build_task, random_task

__all__ = [
    "METHODS",
    "SCHEDULES",
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
    "kv_reuse_blocker",
    "make_metric",
    "measure_faithfulness",
    "patch_flops",
    "patch_schedule",
    "patch_task",
    "pearson",
    "random_task",
    "relp",
    "relp_blocker",
    "relp_gradients",
    "restart_blocker",
]
