"""Commands of the ``world_model`` package for the ``worldplan`` command line."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this package's commands to the top-level app and to ``worldplan bench``."""
    del app, bench_app
