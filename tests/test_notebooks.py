"""Notebooks: the jupytext percent-format ``notebooks/NN_*.py`` files are the single source.

* Each committed ``.ipynb`` must hold exactly the cells of its ``.py`` source (outputs aside).
* Each notebook runs top to bottom with a small budget (``WORKBENCH_BUDGET=small``). With
  ``WORKBENCH_WRITE_NOTEBOOKS=1`` (``make notebooks``) the executed notebook, outputs included, is
  written back to its ``.ipynb``, which is how the committed outputs are produced.
"""

import os
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

DIR = Path(__file__).parents[1] / "notebooks"
SOURCES = sorted(DIR.glob("[0-9][0-9]_*.py"))


def _cells(nb) -> list:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_every_notebook_has_a_source_and_they_agree():
    assert SOURCES, "no notebook sources found"
    assert {p.stem for p in DIR.glob("*.ipynb")} == {p.stem for p in SOURCES}
    for src in SOURCES:
        ipynb = nbformat.read(src.with_suffix(".ipynb"), as_version=4)
        assert _cells(jupytext.read(src)) == _cells(ipynb), (
            f"{src.with_suffix('.ipynb').name} differs from its source {src.name}; "
            f"regenerate it with `make notebooks` (or jupytext --sync)"
        )


def test_every_notebook_ends_with_exercises():
    for src in SOURCES:
        assert "Exercises" in jupytext.read(src).cells[-1].source, f"{src.name} does not end with exercises"


@pytest.mark.notebook
@pytest.mark.parametrize("src", SOURCES, ids=[p.stem for p in SOURCES])
def test_notebook_runs(src, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_BUDGET", "small")
    monkeypatch.setenv("WORKBENCH_FIGURES", str(tmp_path / "figures"))
    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(DIR)}}).execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors
    if os.environ.get("WORKBENCH_WRITE_NOTEBOOKS") == "1":
        nbformat.write(nb, src.with_suffix(".ipynb"))
