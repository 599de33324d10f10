"""Writing figures: ``save_figure`` (HTML + PNG + SVG) and one shared headless browser for static export.

Every figure function in workbench returns a ``plotly.graph_objects.Figure`` and never shows it;
``save_figure`` writes interactive HTML plus static PNG and SVG (via kaleido, driving a headless
Chromium: Debian's ``chromium`` is used when present, through ``BROWSER_PATH``).
"""

import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

import plotly.graph_objects as go

from workbench.paths import figures_dir


def chromium_path() -> Optional[str]:
    for cand in (
        os.environ.get("BROWSER_PATH"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ):
        if cand and Path(cand).exists():
            return cand
    return None


def _setup_kaleido() -> None:
    path = chromium_path()
    if path:
        os.environ.setdefault("BROWSER_PATH", path)


def save_figure(
    fig: go.Figure,
    name: str,
    *,
    directory: Union[str, Path, None] = None,
    formats: Sequence[str] = ("html", "png", "svg"),
    scale: float = 2.0,
) -> dict:
    """Write ``fig`` as ``{directory}/{name}.{html,png,svg}`` and return ``{format: path}``.

    HTML embeds plotly.js (works offline). Static formats need kaleido with a Chromium; if that is
    missing the error says how to install it."""
    if not isinstance(fig, go.Figure):
        raise TypeError(f"save_figure needs a plotly Figure, got {type(fig).__name__}")
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"figure name must be a plain file stem, got {name!r}")
    unknown = set(formats) - {"html", "png", "svg", "pdf", "json"}
    if unknown:
        raise ValueError(f"unknown figure formats {sorted(unknown)}; use html, png, svg, pdf or json")
    out_dir = figures_dir(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"
        if fmt == "html":
            # one shared plotly.min.js beside the pages keeps each HTML small and works offline
            fig.write_html(path, include_plotlyjs="directory", full_html=True)
        elif fmt == "json":
            fig.write_json(path)
        else:
            _setup_kaleido()
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="The kopts argument is ignored")
                    fig.write_image(path, scale=scale if fmt == "png" else 1.0)
            except Exception as err:  # kaleido without a browser
                raise RuntimeError(
                    f"static export to {fmt} failed ({err.__class__.__name__}: {err}). Install Debian's chromium "
                    "(apt-get install chromium) or set BROWSER_PATH to a Chrome/Chromium binary."
                ) from err
        written[fmt] = path
    return written


class static_export_server:
    """Context manager keeping one headless browser open for every static export inside it
    (kaleido's sync server), instead of starting one per image. Safe to nest; a no-op if kaleido
    cannot start a server."""

    def __enter__(self):
        import kaleido

        _setup_kaleido()
        self._started = False
        try:
            if not kaleido._global_server.is_running():
                kaleido.start_sync_server(silence_warnings=True)
                self._started = True
        except Exception:  # fall back to one browser per image
            self._started = False
        return self

    def __exit__(self, *exc):
        if self._started:
            import kaleido

            kaleido.stop_sync_server(silence_warnings=True)
        return False
