"""Where workbench finds and puts things, resolved at call time (never frozen at import).

Each location comes from an explicit argument first, then an environment variable, then a
default. Nothing here creates a directory; writers in the experiments layer do that.

* user cache (converted weights, corpora, tuned lenses): ``cache_dir(path)``, ``WORKBENCH_CACHE``,
  default ``$XDG_CACHE_HOME/workbench`` or ``~/.cache/workbench``;
* shipped SAEs: ``saes_dir(path)``, ``WORKBENCH_SAES``, default the package data ``workbench.saes``
  (the checkout's top-level ``saes/``, reached through the symlink ``workbench/saes``);
* figures written by the tour and CLIs: ``figures_dir(path)``, ``WORKBENCH_FIGURES``, default ``./figures``;
* experiment tables: ``results_dir(path)``, ``WORKBENCH_RESULTS``, default ``./results``.
"""

import os
from pathlib import Path

CACHE_ENV = "WORKBENCH_CACHE"
SAES_ENV = "WORKBENCH_SAES"
FIGURES_ENV = "WORKBENCH_FIGURES"
RESULTS_ENV = "WORKBENCH_RESULTS"


def _resolve(path: str | os.PathLike | None, env: str) -> Path | None:
    if path is not None:
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise TypeError(f"a path must be a non-empty str or os.PathLike, got {path!r}")
        return Path(path).expanduser()
    value = os.environ.get(env)
    return Path(value).expanduser() if value else None


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The user cache: ``path``, else ``$WORKBENCH_CACHE``, else ``$XDG_CACHE_HOME/workbench``,
    else ``~/.cache/workbench``."""
    found = _resolve(path, CACHE_ENV)
    if found is not None:
        return found
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "workbench"


def saes_dir(path: str | os.PathLike | None = None) -> Path:
    """The shipped SAEs: ``path``, else ``$WORKBENCH_SAES``, else the package data ``workbench.saes``
    (in a checkout that is the top-level ``saes/`` folder; in an installed wheel, site-packages)."""
    found = _resolve(path, SAES_ENV)
    if found is not None:
        return found
    from importlib.resources import files

    return Path(str(files("workbench.saes")))


def figures_dir(path: str | os.PathLike | None = None) -> Path:
    """Where figures go: ``path``, else ``$WORKBENCH_FIGURES``, else ``./figures``."""
    return _resolve(path, FIGURES_ENV) or Path("figures")


def results_dir(path: str | os.PathLike | None = None) -> Path:
    """Where experiment tables go: ``path``, else ``$WORKBENCH_RESULTS``, else ``./results``."""
    return _resolve(path, RESULTS_ENV) or Path("results")


def data_path(name: str) -> Path:
    """A data file shipped inside the package (``workbench/data/<name>``)."""
    from importlib.resources import files

    p = Path(str(files("workbench") / "data" / name))
    if not p.exists():
        raise FileNotFoundError(f"no packaged data file {name!r} (looked at {p})")
    return p


__all__ = ["cache_dir", "data_path", "figures_dir", "results_dir", "saes_dir"]
