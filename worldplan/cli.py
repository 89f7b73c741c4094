"""``worldplan``: the command line.

Each package owns its commands in its own ``cli`` module and registers them
here; heavy imports (torch, the server) happen inside the commands, so
``worldplan --help`` stays fast.
"""

from __future__ import annotations

import logging

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


def main() -> None:
    """Run the ``worldplan`` command line."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
