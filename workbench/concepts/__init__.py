"""Concept module: concept data, activation extraction, six registered concept methods (each knows how
to fit a ``ConceptVector`` and how to steer with it), steering edits, independent evaluation and the
steering bake-off. Figures are in ``workbench.plots.concepts``, the bake-off's files in
``workbench.experiments.bakeoff``."""

from .data import ConceptData, ConceptDataError, ConceptSet, available_concepts, load_concept, save_concept
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
from .steering import AblateAndAdd, ACEEdit, GCAVEdit, RowGroups, gcav_epsilon, steering_edit
from .vectors import ConceptVector, fit_vector, mean_centring, mean_difference, pca_of_differences

__all__ = [
    "ACE",
    "METHODS",
    "ACEEdit",
    "AblateAndAdd",
    "ConceptData",
    "ConceptDataError",
    "ConceptMethod",
    "ConceptSet",
    "ConceptVector",
    "DirectionalAblation",
    "GCAVEdit",
    "LogisticCAV",
    "LogisticProbe",
    "MeanCentring",
    "MeanDifference",
    "PCAOfDifferences",
    "RowGroups",
    "available_concepts",
    "best_layer",
    "extract",
    "fit_logistic",
    "fit_vector",
    "gcav_epsilon",
    "get_method",
    "layer_sweep",
    "load_concept",
    "mean_centring",
    "mean_difference",
    "method_class",
    "method_names",
    "pca_of_differences",
    "register_method",
    "save_concept",
    "steering_edit",
]
