"""Patching: clean/corrupted tasks, activation patching (batched), attribution patching (AtP) and
relevance patching (RelP), and how faithful the fast estimates are to activation patching."""

from .activation import STREAMS, activation_patch, patch_task
from .tasks import LogitDiffMetric, Task, build_task, check_task, make_metric

__all__ = [
    "STREAMS",
    "LogitDiffMetric",
    "Task",
    "activation_patch",
    "build_task",
    "check_task",
    "make_metric",
    "patch_task",
]
