"""Concept module: concept data, activation extraction, six concept-vector methods, steering edits,
independent evaluation and the steering bake-off."""

from .data import ConceptData, ConceptDataError, ConceptSet, available_concepts, load_concept, save_concept
from .extract import extract
from .steering import AblateAndAdd, ACEEdit, GCAVEdit, RowGroups, gcav_epsilon, steering_edit
from .vectors import (
    METHODS,
    ConceptVector,
    LogisticProbe,
    best_layer,
    fit_logistic,
    fit_vector,
    layer_sweep,
    mean_centring,
    mean_difference,
    pca_of_differences,
)

__all__ = [
    "METHODS",
    "ACEEdit",
    "AblateAndAdd",
    "ConceptData",
    "ConceptDataError",
    "ConceptSet",
    "ConceptVector",
    "GCAVEdit",
    "LogisticProbe",
    "RowGroups",
    "available_concepts",
    "best_layer",
    "extract",
    "fit_logistic",
    "fit_vector",
    "gcav_epsilon",
    "layer_sweep",
    "load_concept",
    "mean_centring",
    "mean_difference",
    "pca_of_differences",
    "save_concept",
    "steering_edit",
]
