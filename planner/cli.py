"""Commands of the ``planner`` package for the ``worldplan`` command line."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, TypeVar

import typer

T = TypeVar("T")


def _write_json(path: Path, data: object) -> None:
    """Write JSON to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def bench_planner(  # noqa: PLR0917 - typer maps each parameter to an option
    model: Annotated[
        str,
        typer.Option(
            help="World model to plan on: 'analytic' (a point mass with a known optimum)."
        ),
    ] = "analytic",
    optimisers: Annotated[
        str, typer.Option(help="Comma-separated: cem, mppi, gradient.")
    ] = "cem,mppi,gradient",
    problems: Annotated[
        int, typer.Option(min=1, help="Random start/goal problems per optimiser.")
    ] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the problems.")] = 0,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
    out: Annotated[Path, typer.Option(help="JSON results file.")] = Path(
        "artifacts/bench/planner.json"
    ),
) -> None:
    """Time per plan (p50/p95), final cost and time to the optimum for each optimiser."""
    import torch  # noqa: PLC0415 - keep `worldplan --help` fast
    from tqdm import tqdm  # noqa: PLC0415

    from planner import bench  # noqa: PLC0415

    if model != "analytic":
        raise typer.BadParameter(
            f"model must be 'analytic' (model bundles are not wired in yet), got {model!r}",
            param_hint="--model",
        )
    names = [n.strip() for n in optimisers.split(",") if n.strip()]
    unknown = sorted(set(names) - set(bench.OPTIMISERS))
    if not names or unknown:
        raise typer.BadParameter(
            f"unknown optimiser(s) {unknown or names}; choose from {', '.join(bench.OPTIMISERS)}",
            param_hint="--optimisers",
        )
    torch.set_num_threads(threads)

    def progress(it: Iterator[T], total: int) -> Iterator[T]:
        return iter(tqdm(it, total=total, leave=False, desc="planning"))

    result = bench.run(names, problems, seed, progress)
    typer.echo(bench.format_table(result))
    _write_json(out, result)
    typer.echo(f"wrote {out}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this package's commands to the top-level app and to ``worldplan bench``."""
    del app
    bench_app.command("planner")(bench_planner)
