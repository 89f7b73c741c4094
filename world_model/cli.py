"""Commands of the ``world_model`` package for the ``worldplan`` command line."""

from __future__ import annotations

import typer

from world_model.encoder_cli import register_encoder_commands
from world_model.model_cli import register_model_commands
from world_model.pipeline_cli import register_pipeline_commands


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this package's commands to the top-level app and to ``worldplan bench``."""
    register_encoder_commands(app)
    register_pipeline_commands(app)
    register_model_commands(app, bench_app)
