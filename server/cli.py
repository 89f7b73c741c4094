"""Commands of the ``server`` package: ``worldplan serve`` and ``worldplan bench server``."""

from __future__ import annotations

import logging
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


def bench_server(
    *,
    concurrency: Annotated[str, typer.Option(help="Client counts, comma-separated.")] = "1,2,4,8",
    duration: Annotated[float, typer.Option(help="Seconds per concurrency level.")] = 60.0,
    max_requests: Annotated[int, typer.Option(help="Most requests per level.")] = 100_000,
    tiny: Annotated[
        bool, typer.Option("--tiny", help="Serve the random-init load-testing model.")
    ] = False,
    models_dir: Annotated[Path, typer.Option(help="Folder of model bundles.")] = Path("models"),
    model: Annotated[str | None, typer.Option(help="Model to plan with (default: first).")] = None,
    planner: Annotated[str, typer.Option(help="cem, mppi or gradient.")] = "cem",
    horizon: Annotated[int, typer.Option(help="Planning horizon of each request.")] = 3,
    iterations: Annotated[int, typer.Option(help="Planner iterations per request.")] = 3,
    batch_window_ms: Annotated[float, typer.Option(help="Server batch window.")] = 5.0,
    max_batch: Annotated[int, typer.Option(help="Server's largest batch.")] = 16,
    threads: Annotated[int, typer.Option(help="torch threads of the server.")] = 1,
    out: Annotated[Path, typer.Option(help="JSON results.")] = Path("artifacts/bench/server.json"),
) -> None:
    """Plans/s, p50/p95 latency and batch size of the service by client concurrency."""
    from server.bench import BenchConfig, format_table, ratio, run_bench  # noqa: PLC0415

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    try:
        levels = tuple(int(c) for c in concurrency.split(","))
        config = BenchConfig(
            concurrency=levels, duration_s=duration, max_requests=max_requests, tiny=tiny,
            models_dir=models_dir, model=model, planner=planner, horizon=horizon,
            iterations=iterations, batch_window_ms=batch_window_ms, max_batch=max_batch,
            threads=threads, out=out,
        )  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        results = run_bench(config)
    except (ValueError, RuntimeError) as exc:
        typer.echo(f"bench server failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(format_table(results))
    r = ratio(results, max(levels))
    if r is not None:
        typer.echo(f"plans/s at {max(levels)} clients / at 1 client: {r:.2f}x")
    typer.echo(f"wrote {out}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this package's commands to the top-level app and to ``worldplan bench``."""
    app.command("serve")(serve)
    bench_app.command("server")(bench_server)
