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
            help="World model to plan on: 'analytic' (a point mass with a known optimum) or "
            "'bundle' (the push-T bundle at --bundle, side by side with DINO-WM's CEM loop and "
            "stable-worldmodel's solvers; a random-init push-T-shaped model, labelled as "
            "such, when there is no bundle)."
        ),
    ] = "analytic",
    bundle: Annotated[
        Path, typer.Option(help="With --model bundle: the push-T model bundle folder.")
    ] = Path("models/pusht"),
    pairs: Annotated[
        int, typer.Option(min=1, help="With --model bundle: (observation, goal) pairs.")
    ] = 4,
    samples: Annotated[
        int, typer.Option(min=1, help="With --model bundle: samples per iteration (all CEM/MPPI).")
    ] = 300,
    elites: Annotated[int, typer.Option(min=1, help="With --model bundle: elites (top k).")] = 30,
    iterations: Annotated[
        int, typer.Option(min=1, help="With --model bundle: CEM/MPPI iterations.")
    ] = 30,
    grad_iterations: Annotated[
        int, typer.Option(min=1, help="With --model bundle: gradient steps.")
    ] = 100,
    restarts: Annotated[
        int, typer.Option(min=1, help="With --model bundle: gradient restarts (samples).")
    ] = 8,
    peers: Annotated[
        bool, typer.Option(help="With --model bundle: run stable-worldmodel's solvers too.")
    ] = True,
    dinowm: Annotated[
        bool, typer.Option(help="With --model bundle: run DINO-WM's CEM loop too.")
    ] = True,
    batched: Annotated[
        bool, typer.Option(help="With --model bundle: also plan all pairs in one call.")
    ] = True,
    venv_dir: Annotated[
        Path, typer.Option(help="Where the benchmark-only peer venvs live.")
    ] = Path("artifacts/bench-venvs"),
    torch_spec: Annotated[
        str, typer.Option(help="pip requirement of the (CPU) torch for the peer venv.")
    ] = "torch==2.13.0",
    optimisers: Annotated[
        str, typer.Option(help="Comma-separated: cem, mppi, gradient.")
    ] = "cem,mppi,gradient",
    problems: Annotated[
        int, typer.Option(min=1, help="Random start/goal problems per optimiser.")
    ] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the problems.")] = 0,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
    out: Annotated[
        Path | None,
        typer.Option(
            help="JSON results file (default: artifacts/bench/planner.json, or "
            "artifacts/bench/planner_pusht.json with --model bundle)."
        ),
    ] = None,
) -> None:
    """Time per plan (p50/p95) and final cost for each optimiser (and, on push-T, its peers)."""
    import torch  # noqa: PLC0415 - keep `worldplan --help` fast
    from tqdm import tqdm  # noqa: PLC0415

    from planner import bench  # noqa: PLC0415

    if model not in ("analytic", "bundle"):
        raise typer.BadParameter(
            f"model must be 'analytic' or 'bundle', got {model!r}", param_hint="--model"
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

    if model == "bundle":
        from planner import bench_peers  # noqa: PLC0415

        try:
            cfg = bench_peers.PushTBenchConfig(
                bundle=bundle, pairs=pairs, seed=seed, samples=samples, elites=elites,
                iterations=iterations, grad_iterations=grad_iterations, restarts=restarts,
                optimisers=tuple(names), batched=batched, dinowm=dinowm, peers=peers,
                threads=threads, venv_dir=venv_dir, torch_spec=torch_spec,
            )  # fmt: skip
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        out = out or Path("artifacts/bench/planner_pusht.json")
        pusht = bench_peers.run_pusht(cfg, progress)
        typer.echo(bench_peers.format_table(pusht))
        _write_json(out, pusht)
        typer.echo(f"wrote {out}")
        return
    out = out or Path("artifacts/bench/planner.json")
    result = bench.run(names, problems, seed, progress)
    typer.echo(bench.format_table(result))
    _write_json(out, result)
    typer.echo(f"wrote {out}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this package's commands to the top-level app and to ``worldplan bench``."""
    del app
    bench_app.command("planner")(bench_planner)
