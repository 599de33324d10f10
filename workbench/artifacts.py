"""Artifact I/O: the one way workbench saves and loads tensors, JSON and tables.

* **Tensors** go to ``<stem>.safetensors`` with a ``<stem>.json`` sidecar. Both carry the artifact's
  ``kind`` (``"concept_vector"``, ``"tuned_lens"``, ...) and ``schema_version``; loading checks
  them, and every error names the file and the field. Never pickles.
* **JSON** documents carry the same two fields.
* **Tables** are CSV with floats written to a stated precision (so reruns give identical bytes),
  loaded with their required columns checked.

Writes are atomic (a temporary file renamed into place), so an interrupted save never leaves a
half-written artifact that a later load would trust.
"""

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

KIND_KEY = "kind"
VERSION_KEY = "schema_version"


class ArtifactError(ValueError):
    """A saved artifact is missing, corrupted, of another kind or version, or lacks a field."""


def _stem(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


def _with_ext(stem: Path, ext: str) -> Path:
    """``stem`` + ``ext`` (not ``with_suffix``, which would eat a dot inside the stem: ``logistic_resid_post.8``)."""
    return stem.with_name(stem.name + ext)


def tensor_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(<stem>.safetensors, <stem>.json)`` of the tensor artifact at ``path`` (a stem or either file)."""
    stem = _stem(path)
    return _with_ext(stem, ".safetensors"), _with_ext(stem, ".json")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def round_floats(obj: Any, digits: int | None) -> Any:
    """``obj`` with every float rounded to ``digits`` significant digits (None: unchanged).
    Non-finite floats become None, so the JSON is strict (``Infinity`` is not JSON)."""
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        return float(f"{obj:.{digits}g}") if digits is not None else obj
    if isinstance(obj, Mapping):
        return {k: round_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [round_floats(v, digits) for v in obj]
    return obj


def save_json(
    path: str | os.PathLike, obj: Mapping[str, Any], *, kind: str, version: int, digits: int | None = 8
) -> Path:
    """Write ``obj`` as strict JSON with ``kind`` and ``schema_version`` fields; floats rounded to
    ``digits`` significant digits."""
    path = Path(path)
    doc = {KIND_KEY: kind, VERSION_KEY: version, **round_floats(dict(obj), digits)}
    _atomic_write_bytes(path, (json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n").encode())
    return path


def read_json(path: str | os.PathLike) -> dict:
    """Parse a JSON file; a missing or corrupted file raises ``ArtifactError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    return doc


def check_header(path: Path, doc: Mapping[str, Any], kind: str, versions: Iterable[int]) -> None:
    versions = tuple(versions)
    if doc.get(KIND_KEY) != kind:
        raise ArtifactError(f"{path}: field '{KIND_KEY}' is {doc.get(KIND_KEY)!r}, expected {kind!r}")
    if doc.get(VERSION_KEY) not in versions:
        raise ArtifactError(
            f"{path}: field '{VERSION_KEY}' is {doc.get(VERSION_KEY)!r}; this workbench reads versions {list(versions)}"
        )


def load_json(
    path: str | os.PathLike, *, kind: str, versions: Iterable[int] = (1,), required: Iterable[str] = ()
) -> dict:
    """Read a JSON artifact, checking its kind, schema version and required fields."""
    path = Path(path)
    doc = read_json(path)
    check_header(path, doc, kind, versions)
    missing = [f for f in required if f not in doc]
    if missing:
        raise ArtifactError(f"{path}: missing field(s) {', '.join(map(repr, missing))}")
    return doc


def save_tensors(
    path: str | os.PathLike,
    tensors: Mapping[str, Tensor],
    meta: Mapping[str, Any],
    *,
    kind: str,
    version: int,
) -> Path:
    """Write ``<stem>.safetensors`` (contiguous CPU copies) and the ``<stem>.json`` sidecar."""
    from safetensors.torch import save

    stem = _stem(path)
    if not tensors:
        raise ValueError("save_tensors needs at least one tensor")
    data = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    header = {KIND_KEY: kind, VERSION_KEY: str(version)}
    _atomic_write_bytes(_with_ext(stem, ".safetensors"), save(data, metadata=header))
    save_json(_with_ext(stem, ".json"), meta, kind=kind, version=version, digits=None)
    return stem


def load_tensors(
    path: str | os.PathLike,
    *,
    kind: str,
    versions: Iterable[int] = (1,),
    required_tensors: Iterable[str] = (),
    required_meta: Iterable[str] = (),
    device: str | torch.device = "cpu",
) -> tuple[dict[str, Tensor], dict]:
    """Read a tensor artifact and its sidecar; check kind, version, required tensors and fields,
    and that no tensor holds NaN or Inf. Returns ``(tensors, meta)``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    stem = _stem(path)
    meta = load_json(_with_ext(stem, ".json"), kind=kind, versions=versions, required=required_meta)
    st = _with_ext(stem, ".safetensors")
    if not st.is_file():
        raise ArtifactError(f"{st}: no such file (its sidecar {_with_ext(stem, '.json')} exists)")
    try:
        tensors = load_file(str(st), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtifactError(f"{st}: not a readable safetensors file ({err})") from None
    missing = [k for k in required_tensors if k not in tensors]
    if missing:
        raise ArtifactError(f"{st}: missing tensor(s) {', '.join(map(repr, missing))}; found {sorted(tensors)}")
    for k, v in tensors.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise ArtifactError(f"{st}: tensor {k!r} holds NaN or Inf")
    return tensors, meta


def save_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically, for formats that carry their own header (e.g. the concept JSONL
    files, whose first line is their provenance)."""
    path = Path(path)
    _atomic_write_bytes(path, text.encode("utf-8"))
    return path


def save_table(table, path: str | os.PathLike, *, digits: int = 8) -> Path:
    """Write a pandas DataFrame as CSV, floats to ``digits`` significant digits (stable bytes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    table.to_csv(tmp, index=False, float_format=f"%.{digits}g")
    os.replace(tmp, path)
    return path


def load_table(path: str | os.PathLike, *, required_columns: Iterable[str] = ()):
    """Read a CSV table written by ``save_table``; missing file or columns raise ``ArtifactError``."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: not a readable CSV table ({err})") from None
    missing = [c for c in required_columns if c not in table.columns]
    if missing:
        raise ArtifactError(f"{path}: missing column(s) {', '.join(map(repr, missing))}")
    return table


__all__ = [
    "ArtifactError",
    "check_header",
    "load_json",
    "load_table",
    "load_tensors",
    "read_json",
    "round_floats",
    "save_json",
    "save_table",
    "save_tensors",
    "save_text",
    "tensor_paths",
]
