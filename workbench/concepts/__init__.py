"""Concept module: concept data, activation extraction, registered concept methods (each knows how
to fit a ``ConceptVector`` and how to steer with it), steering edits, independent evaluation with
bootstrap intervals over prompts (``stats``), the norm-matched random-direction control
(``controls``) and the steering bake-off. Figures are in ``workbench.plots.concepts``, the
bake-off's files in ``workbench.experiments.bakeoff``."""

from .controls import CONTROL_METHOD, control_edits, random_unit_directions
from .data import ConceptData, ConceptDataError, ConceptSet, available_concepts, load_concept, save_concept
from .evaluate import Condition, SweepResult, condition_table, run_conditions, steering_sweep
from .extract import extract
from .method import ConceptMethod, get_method, method_class, method_names, register_method
from .methods import (
    ACE,
    METHODS,
    DirectionalAblation,
    LogisticCAV,
    MeanCentring,
    MeanDifference,
    PCAOfDifferences,
)
from .probe import LogisticProbe, best_layer, fit_logistic, layer_sweep
from .stats import Interval, bootstrap_ci, mean_ci, resample_indices
from .steering import AblateAndAdd, ACEEdit, GCAVEdit, RowGroups, gcav_epsilon, steering_edit
from .vectors import ConceptVector, fit_vector, mean_centring, mean_difference, pca_of_differences

__all__ = [
    "ACE",
    "CONTROL_METHOD",
    "METHODS",
    "ACEEdit",
    "AblateAndAdd",
    "ConceptData",
    "ConceptDataError",
    "ConceptMethod",
    "ConceptSet",
    "ConceptVector",
    "Condition",
    "DirectionalAblation",
    "GCAVEdit",
    "Interval",
    "LogisticCAV",
    "LogisticProbe",
    "MeanCentring",
    "MeanDifference",
    "PCAOfDifferences",
    "RowGroups",
    "SweepResult",
    "available_concepts",
    "best_layer",
    "bootstrap_ci",
    "condition_table",
    "control_edits",
    "extract",
    "fit_logistic",
    "fit_vector",
    "gcav_epsilon",
    "get_method",
    "layer_sweep",
    "load_concept",
    "mean_centring",
    "mean_ci",
    "mean_difference",
    "method_class",
    "method_names",
    "pca_of_differences",
    "random_unit_directions",
    "register_method",
    "resample_indices",
    "run_conditions",
    "save_concept",
    "steering_edit",
    "steering_sweep",
]
