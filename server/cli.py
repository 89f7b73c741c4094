"""Commands of the ``server`` package: ``worldplan serve`` and ``worldplan bench server``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    models_dir: Annotated[
        Path | None, typer.Option(help="Folder of model bundles (default: settings).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="torch device (default: settings).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Start the planning service (settings from WORLDPLAN_* env vars or .env)."""
    import uvicorn  # noqa: PLC0415 - keep `worldplan --help` fast

    from server.app import create_app  # noqa: PLC0415
    from server.settings import Settings  # noqa: PLC0415

    overrides: dict[str, object] = {}
    if models_dir is not None:
        overrides["models_dir"] = models_dir
    if device is not None:
        overrides["device"] = device
    settings = Settings(**overrides)  # type: ignore[arg-type]
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this package's commands to the top-level app and to ``worldplan bench``."""
    del bench_app
    app.command("serve")(serve)
