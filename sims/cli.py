"""Commands of the ``sims`` package for the ``worldplan`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_ENV_KEYS = "pusht, maze-umaze, maze-tworoom, granular"


def bench_sims(
    *,
    image_size: Annotated[
        list[int] | None,
        typer.Option(
            "--image-size",
            help="Rendered image side in pixels; repeat for several. [default: 96, 224]",
        ),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env", help=f"Env to time; repeat for several ({_ENV_KEYS}). [default: all]"
        ),
    ] = None,
    steps: Annotated[int, typer.Option(help="Timed steps per repeat.")] = 500,
    warmup: Annotated[int, typer.Option(help="Untimed steps before each repeat.")] = 50,
    repeats: Annotated[int, typer.Option(help="Repeats; the table shows the median.")] = 5,
    seed: Annotated[int, typer.Option(help="Base seed of resets and random actions.")] = 0,
    threads: Annotated[int, typer.Option(help="Threads for cv2/torch, ours and peers.")] = 1,
    no_peers: Annotated[
        bool, typer.Option("--no-peers", help="Skip the peers (gym-pusht, stable-worldmodel).")
    ] = False,
    venv_dir: Annotated[
        Path, typer.Option(help="Cache folder of the peers' benchmark-only venvs.")
    ] = Path("artifacts/bench-venvs"),
    torch_spec: Annotated[
        str, typer.Option(help="torch requirement for peers that need torch (CPU build).")
    ] = "torch==2.13.0",
    clock: Annotated[
        str, typer.Option(help="Rates in the table from 'cpu' (process CPU time) or 'wall' time.")
    ] = "cpu",
    json_path: Annotated[
        Path, typer.Option("--json", help="Where to write all results as JSON.")
    ] = Path("artifacts/bench/sims.json"),
) -> None:
    """Steps/s and rendered frames/s of our envs, and of gym-pusht and stable-worldmodel."""
    from sims import bench  # noqa: PLC0415 (keeps `worldplan --help` fast)

    try:
        config = bench.BenchConfig(
            image_sizes=tuple(image_size or (96, 224)),
            steps=steps,
            warmup=warmup,
            repeats=repeats,
            seed=seed,
            threads=threads,
            peers=not no_peers,
            venv_dir=venv_dir,
            torch_spec=torch_spec,
            clock=clock,
            envs=tuple(env) if env else tuple(c.key for c in bench.OUR_CASES),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    doc = bench.run_bench(config)
    bench.write_json(json_path, doc)
    typer.echo(bench.format_table(doc["rows"], clock=config.clock))
    typer.echo(f"\nresults written to {json_path}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this package's commands to the top-level app and to ``worldplan bench``."""
    del app
    bench_app.command("sims")(bench_sims)
