"""The command line (``workbench ...``): typer apps over the library and the experiments."""

from .main import app, main

__all__ = ["app", "main"]
