"""``worldplan``: the command line.

Each package owns its commands in its own ``cli`` module and registers them
here; heavy imports (torch, the server) happen inside the commands, so
``worldplan --help`` stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

import clients.cli
import planner.cli
import server.cli
import sims.cli
import world_model.cli

app = typer.Typer(
    help="worldplan: latent model-predictive planning for robots.",
    no_args_is_help=True,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks that print tables and write JSON.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

for _module in (sims.cli, world_model.cli, planner.cli, server.cli, clients.cli):
    _module.register(app, bench_app)


def _in_process_app(api_key: str) -> object:
    """The service as an ASGI app in this process, accepting ``api_key`` (for ``eval``)."""
    from server.app import create_app  # noqa: PLC0415 - keep --help fast
    from server.settings import Settings  # noqa: PLC0415

    return create_app(Settings(api_keys=[api_key]))  # type: ignore[list-item]


# This module is the composition root: the one place that hands the server to a client.
clients.cli.set_app_factory(_in_process_app)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's outputs.")] = Path(
        "artifacts/demo"
    ),
    seed: Annotated[int, typer.Option(help="Episode seed.")] = 0,
    steps: Annotated[int, typer.Option(help="Env steps to run.")] = 120,
) -> None:
    """Run the main job on the shipped defaults and write what it did under ``out``."""
    from sims.demo import record_episode  # noqa: PLC0415 - keep --help fast

    path = record_episode("worldplan/PushT-v0", out, seed=seed, steps=steps)
    typer.echo(f"wrote {path}")


def main() -> None:
    """Run the ``worldplan`` command line."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
