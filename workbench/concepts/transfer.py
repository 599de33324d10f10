"""Does a concept learnt on one kind of text hold on another? Probes and vectors across data sources.

``transfer_sweep`` fits a logistic probe per layer on each source's training split and scores it on
every source's held-out split (e.g. template-written sentiment → human-rated real sentences and the
reverse), so a layer sweep on real text says where the model represents the concept rather than
where template words are separable. ``vector_cosines`` compares the directions the sources give
(mean difference and the probe normal) layer by layer. Activations are read once per source and
layer set (``extract``); nothing is written.
"""

from collections.abc import Sequence

import pandas as pd
import torch

from ..validation import check_choice, check_float, check_int
from .data import load_concept
from .extract import extract
from .probe import fit_logistic, labels_for
from .vectors import mean_difference


def source_activations(
    model,
    concepts: Sequence[str],
    layers: Sequence[int],
    *,
    reduce: str = "mean",
    n_train: int = 400,
    n_test: int = 150,
    stream: str = "resid_post",
    progress: bool = False,
) -> dict[str, dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]]:
    """``{concept: {"train"|"test": {site: (pos [n, d], neg [m, d])}}}`` for the first ``n_train`` /
    ``n_test`` texts per side of each concept's splits."""
    check_choice("reduce", reduce, ("mean", "last"))
    check_int("n_train", n_train, min=2)
    check_int("n_test", n_test, min=1)
    sites = [f"{stream}.{layer}" for layer in layers]
    out: dict = {}
    for name in concepts:
        data = load_concept(name)
        if data.test is None:
            raise ValueError(f"concept {name!r} has no held-out split")
        out[name] = {}
        for split, cs in (("train", data.train.head(n_train)), ("test", data.test.head(n_test))):
            acts = extract(model, cs.texts, sites, reduce, progress=progress)
            n = len(cs.positive)
            out[name][split] = {s: (a[:n], a[n:]) for s, a in acts.items()}
    return out


def transfer_sweep(activations: dict, *, C: float = 1.0) -> pd.DataFrame:
    """For every (train source, test source, site): the held-out accuracy of a logistic probe fitted
    on the train source's training split and scored on the test source's held-out split. Columns
    ``train_on``, ``test_on``, ``site``, ``layer``, ``test_accuracy``, ``n_test``."""
    check_float("C", C, min=0.0, min_open=True)
    rows = []
    for train_on, parts in activations.items():
        for site, (pos, neg) in parts["train"].items():
            probe = fit_logistic(*labels_for(pos, neg), C=C)
            for test_on, other in activations.items():
                x, y = labels_for(*other["test"][site])
                rows.append(
                    {
                        "train_on": train_on,
                        "test_on": test_on,
                        "site": site,
                        "layer": int(site.rsplit(".", 1)[1]),
                        "test_accuracy": probe.accuracy(x, y),
                        "n_test": len(y),
                    }
                )
    return pd.DataFrame(rows)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a.double() @ b.double() / (a.double().norm() * b.double().norm()))


def vector_cosines(activations: dict, a: str, b: str, *, C: float = 1.0) -> pd.DataFrame:
    """Per site: the cosine between source ``a``'s and source ``b``'s mean-difference vectors
    ``μ⁺ − μ⁻`` and between their logistic probe normals, on the training splits."""
    rows = []
    for site, (pos_a, neg_a) in activations[a]["train"].items():
        pos_b, neg_b = activations[b]["train"][site]
        wa = fit_logistic(*labels_for(pos_a, neg_a), C=C).w
        wb = fit_logistic(*labels_for(pos_b, neg_b), C=C).w
        rows.append(
            {
                "site": site,
                "layer": int(site.rsplit(".", 1)[1]),
                "mean_diff_cosine": _cos(mean_difference(pos_a, neg_a), mean_difference(pos_b, neg_b)),
                "probe_cosine": _cos(wa, wb),
            }
        )
    return pd.DataFrame(rows)


__all__ = ["source_activations", "transfer_sweep", "vector_cosines"]
