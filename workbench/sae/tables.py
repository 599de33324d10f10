"""Score tables of SAE features: one row per feature, built, selected from, saved and loaded.

A table (a pandas DataFrame, :func:`score_table`) holds ``feature``, ``output_score``,
``input_score``, ``n_examples``, ``max_activation``, ``fire_frequency`` and the logit-lens tokens
(``top_tokens`` as strings, ``top_token_ids`` as ids). On disk it is a CSV written by
:func:`workbench.artifacts.save_table`, the token lists joined by ``" | "`` and ``" "``;
:func:`load_score_table` is the one parser of that CSV. :func:`save_scores` / :func:`load_scores`
store a whole :class:`FeatureScores` (table, feature lens, top examples) in one folder.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union, cast

import torch
from torch import Tensor

from ..artifacts import ArtifactError, load_table, save_table
from ..tokens import token_strings
from ..validation import check_bool, check_choice, check_int, check_probability
from .corpus import heldout_tokens
from .feature_lens import FeatureLens, feature_logit_lens
from .scores import input_scores_from_examples, output_scores
from .top_examples import TopExamples, collect_top_examples

SCORES_CSV = "scores.csv"
FEATURE_LENS_STEM = "feature_lens"
TABLE_COLUMNS = ("feature", "output_score", "input_score", "n_examples", "top_tokens")
SORT_KEYS = ("output_score", "input_score", "max_activation", "feature")
_SEP = " | "


@dataclass
class FeatureScores:
    """Scores of every feature of one SAE: the table (see :func:`score_table`), the feature lens
    and the top examples (None when input scores were not computed)."""

    table: Any  # a pandas DataFrame (pandas is imported lazily)
    lens: FeatureLens
    examples: Optional[TopExamples] = None


def score_table(
    model,
    sae,
    *,
    lens: FeatureLens,
    output: Optional[Tensor] = None,
    examples: Optional[TopExamples] = None,
    input: Optional[Tensor] = None,
    n_show: int = 8,
):
    """A pandas DataFrame, one row per feature: ``feature``, ``output_score``, ``input_score``,
    ``n_examples``, ``max_activation``, ``fire_frequency``, and the logit-lens ``top_tokens``
    (first ``n_show`` as a list of strings) and ``top_token_ids`` (all ``k``)."""
    import pandas as pd

    d_sae = sae.cfg.d_sae
    check_int("n_show", n_show, min=1)
    for name, t in (("output", output), ("input", input)):
        if t is not None and tuple(t.shape) != (d_sae,):
            raise ValueError(f"{name} scores must have shape [{d_sae}] (one per feature), got {tuple(t.shape)}")
    nan = torch.full((d_sae,), float("nan"))
    if input is None and examples is not None:
        input = input_scores_from_examples(examples, lens)
    df = pd.DataFrame(
        {
            "feature": range(d_sae),
            "output_score": (output if output is not None else nan).cpu().numpy(),
            "input_score": (input if input is not None else nan).cpu().numpy(),
            "n_examples": (examples.n_examples.numpy() if examples is not None else [-1] * d_sae),
            "max_activation": (examples.max_activation.numpy() if examples is not None else nan.numpy()),
            "fire_frequency": (examples.fire_frequency.numpy() if examples is not None else nan.numpy()),
        }
    )
    df["top_tokens"] = [token_strings(model, row[:n_show]) for row in lens.top_tokens]
    df["top_token_ids"] = [[t for t in row.tolist() if t >= 0] for row in lens.top_tokens]
    return df


def feature_scores(
    model,
    sae,
    *,
    corpus_tokens: Optional[Tensor] = None,
    n_rows: int = 256,
    with_input: bool = True,
    example_len: Optional[int] = None,
    batch_size: int = 128,
    progress: bool = True,
) -> FeatureScores:
    """Everything at once: feature lens, output scores (batched), and, with ``with_input``, the top
    examples over ``corpus_tokens`` (default: the first ``n_rows`` held-out sequences) and the
    input scores."""
    check_bool("with_input", with_input)
    lens = feature_logit_lens(model, sae)
    out = output_scores(model, sae, lens, batch_size=batch_size, progress=progress)
    examples = None
    if with_input:
        toks = corpus_tokens if corpus_tokens is not None else heldout_tokens(model, n_rows)
        examples = cast(TopExamples, collect_top_examples(model, sae, toks, example_len=example_len, progress=progress))
    return FeatureScores(score_table(model, sae, lens=lens, output=out, examples=examples), lens, examples)


def select_features(
    sae,
    *,
    model,
    scores=None,
    min_output_score: Optional[float] = None,
    min_input_score: Optional[float] = None,
    max_input_score: Optional[float] = None,
    top_n: Optional[int] = None,
    sort_by: str = "output_score",
    corpus_tokens: Optional[Tensor] = None,
):
    """Choose features by their scores; returns the selected rows of :func:`score_table` (feature,
    scores, max activation, logit-lens tokens), sorted by ``sort_by`` descending.

    ``scores`` is a :class:`FeatureScores` or a table from :func:`score_table`; without it the output
    scores are computed (batched), and the input scores too when an input threshold is given
    (from ``corpus_tokens``, default the held-out corpus)."""
    import pandas as pd

    for name, v in (
        ("min_output_score", min_output_score),
        ("min_input_score", min_input_score),
        ("max_input_score", max_input_score),
    ):
        if v is not None:
            check_probability(name, v)
    if top_n is not None:
        check_int("top_n", top_n, min=1)
    check_choice("sort_by", sort_by, SORT_KEYS)
    if scores is None:
        need_input = (
            min_input_score is not None or max_input_score is not None or sort_by in ("input_score", "max_activation")
        )
        scores = feature_scores(model, sae, corpus_tokens=corpus_tokens, with_input=need_input, progress=False)
    if isinstance(scores, FeatureScores):
        scores = scores.table
    if not isinstance(scores, pd.DataFrame) or "output_score" not in scores:
        raise TypeError(f"scores must be a FeatureScores or a DataFrame from score_table, got {type(scores).__name__}")
    keep = pd.Series(True, index=scores.index)
    if min_output_score is not None:
        keep &= scores["output_score"] >= min_output_score
    if min_input_score is not None:
        keep &= scores["input_score"] >= min_input_score
    if max_input_score is not None:
        keep &= scores["input_score"] <= max_input_score
    out = scores.loc[keep].sort_values(sort_by, ascending=sort_by == "feature", kind="stable")
    return out.head(top_n) if top_n is not None else out


# ----------------------------------------------------------------------------- files


def save_score_table(table, path: Union[str, Path]) -> Path:
    """Write a score table as CSV (token lists joined: ``top_tokens`` by ``" | "``, ids by spaces)."""
    t = table.copy()
    t["top_tokens"] = [_SEP.join(x) for x in t["top_tokens"]]
    if "top_token_ids" in t:
        t["top_token_ids"] = [" ".join(map(str, x)) for x in t["top_token_ids"]]
    return save_table(t, path)


def load_score_table(path: Union[str, Path]):
    """Read a score table written by :func:`save_score_table` (the one parser of that CSV): the
    token columns become lists again; a missing file or column raises ``ArtifactError``."""
    table = load_table(path, required_columns=TABLE_COLUMNS)
    table["top_tokens"] = [x.split(_SEP) if isinstance(x, str) else [] for x in table["top_tokens"]]
    if "top_token_ids" in table:
        try:
            table["top_token_ids"] = [
                [int(v) for v in x.split()] if isinstance(x, str) else [] for x in table["top_token_ids"]
            ]
        except ValueError as err:
            raise ArtifactError(f"{path}: column 'top_token_ids' holds a non-integer ({err})") from None
    return table


def save_scores(scores: FeatureScores, path: Union[str, Path]) -> Path:
    """Write ``scores.csv``, ``feature_lens.safetensors/.json`` and (when present) the top examples
    into folder ``path``."""
    if not isinstance(scores, FeatureScores):
        raise TypeError(f"scores must be a FeatureScores, got {type(scores).__name__}")
    path = Path(path)
    save_score_table(scores.table, path / SCORES_CSV)
    scores.lens.save(path / FEATURE_LENS_STEM)
    if scores.examples is not None:
        scores.examples.save(path)
    return path


def has_saved_scores(path: Union[str, Path], *, with_examples: bool = True) -> bool:
    """Whether folder ``path`` holds what :func:`save_scores` writes (the top examples too, by default)."""
    path = Path(path)
    need = [path / SCORES_CSV, path / f"{FEATURE_LENS_STEM}.json"]
    if with_examples:
        need.append(path / "top_examples.json")
    return all(p.is_file() for p in need)


def load_scores(path: Union[str, Path]) -> FeatureScores:
    """Read what :func:`save_scores` wrote."""
    path = Path(path)
    if not (path / SCORES_CSV).is_file():
        raise FileNotFoundError(f"no {SCORES_CSV} in {path}; compute scores first (`workbench sae scores`)")
    table = load_score_table(path / SCORES_CSV)
    lens = FeatureLens.load(path / FEATURE_LENS_STEM)
    examples = TopExamples.load(path) if (path / "top_examples.json").is_file() else None
    return FeatureScores(table, lens, examples)


__all__ = [
    "FeatureScores",
    "feature_scores",
    "has_saved_scores",
    "load_score_table",
    "load_scores",
    "save_score_table",
    "save_scores",
    "score_table",
    "select_features",
]
