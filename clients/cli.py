"""Commands of the ``clients`` package for the ``worldplan`` command line: ``worldplan eval``.

``worldplan eval --server URL`` talks to a running server. Without ``--server``
the service runs in this process: the composition root (``worldplan/cli.py``,
the one place allowed to import the server) hands this module a factory with
:func:`set_app_factory` (an ASGI app accepting a given API key; it is served
through :class:`clients.inprocess.InProcessTransport`) or, for tests and other
transports, :func:`set_transport_factory`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from clients.seeds import EVAL_SEED_BASE

if TYPE_CHECKING:
    import httpx

    from clients.closed_loop import Episode
    from clients.evaluate import EvalResult

log = logging.getLogger(__name__)

API_KEY_ENV = "WORLDPLAN_API_KEY"
"""Environment variable read for the API key when ``--api-key`` is not given."""

TransportFactory = Callable[[str], "httpx.BaseTransport"]
_factory: TransportFactory | None = None


def set_transport_factory(factory: TransportFactory | None) -> None:
    """Serve ``worldplan eval`` without ``--server`` through ``factory(api_key)``."""
    global _factory  # noqa: PLW0603 - one hook set by the composition root
    _factory = factory


def set_app_factory(factory: Callable[[str], Any] | None) -> None:
    """Serve ``worldplan eval`` without ``--server`` from ``factory(api_key)``, an ASGI app.

    The app runs in this process with its lifespan (model loading at start-up) and
    must accept ``api_key`` in ``X-API-Key``.
    """
    if factory is None:
        set_transport_factory(None)
        return

    def transport(api_key: str) -> httpx.BaseTransport:
        from clients.inprocess import InProcessTransport  # noqa: PLC0415

        return InProcessTransport(factory(api_key))

    set_transport_factory(transport)


def _parse_budgets(text: str | None) -> tuple[int | None, ...]:
    if text is None or not text.strip():
        return (None,)
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise typer.BadParameter(
            f"--budgets must be comma-separated iteration counts like 10,30,100, got {text!r}"
        ) from exc
    if not values or min(values) < 1:
        raise typer.BadParameter(f"--budgets must be iteration counts >= 1, got {text!r}")
    return values


def _client(server: str | None, api_key: str | None, timeout_s: float = 120.0) -> Any:
    from clients.client import WorldplanClient  # noqa: PLC0415

    key = api_key or os.environ.get(API_KEY_ENV)
    if server is not None:
        return WorldplanClient(server, api_key=key, timeout_s=timeout_s)
    if _factory is None:
        raise typer.BadParameter(
            "no in-process service is available here; pass --server URL of a running "
            "`worldplan serve`",
            param_hint="--server",
        )
    key = key or secrets.token_urlsafe(24)
    return WorldplanClient(api_key=key, transport=_factory(key), timeout_s=timeout_s)


def _table(result: EvalResult) -> str:
    rows = [
        (
            "controller",
            "success",
            "95% CI",
            f"mean {result.planned[0].metric_name}",
            "plan ms",
            "plan ms/step",
            "round trip ms",
        )
    ]
    for s in [*result.planned, *result.baselines]:
        rows.append(
            (
                s.controller,
                f"{s.successes}/{s.episodes} = {s.success_rate:.2f}",
                f"[{s.ci_low:.2f}, {s.ci_high:.2f}]",
                f"{s.mean_final_metric:.3f}",
                "-" if s.mean_plan_ms is None else f"{s.mean_plan_ms:.1f}",
                "-" if s.plan_ms_per_env_step is None else f"{s.plan_ms_per_env_step:.1f}",
                "-" if s.mean_round_trip_ms is None else f"{s.mean_round_trip_ms:.1f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def _tick(bar: Any, log: Path, episode: Episode) -> None:
    """One more episode: the progress bar, and its record appended to ``log``."""
    bar.update(1)
    with log.open("a", encoding="utf-8") as f:
        f.write(json.dumps(episode.to_json()) + "\n")


def eval_command(  # noqa: PLR0917 - typer maps each parameter to an option
    env: Annotated[str, typer.Option(help="pusht, maze, umaze, tworoom, granular, or an env id.")],
    episodes: Annotated[int, typer.Option(min=1, help="Episodes (seeds) per controller.")] = 10,
    planner: Annotated[
        Literal["cem", "gradient", "mppi"], typer.Option(help="Optimiser of the service.")
    ] = "cem",
    seed: Annotated[
        int, typer.Option(min=0, help="Base seed: episode i resets with seed+i.")
    ] = EVAL_SEED_BASE,
    server: Annotated[
        str | None, typer.Option(help="URL of a running server; in-process when omitted.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help=f"API key (default: ${API_KEY_ENV}).")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model name on the service (default: the env's); the in-process service "
            "loads the bundles under $WORLDPLAN_MODELS_DIR (default models/)."
        ),
    ] = None,
    goal_steps: Annotated[
        int, typer.Option(min=1, help="Env steps to the goal: 25 (DINO-WM), 50 or 100 (harder).")
    ] = 25,
    execute_steps: Annotated[
        int | None, typer.Option(min=1, help="Planning steps executed per plan (default: all).")
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option(min=1, help="Env steps per episode (default: the env's time limit)."),
    ] = None,
    budgets: Annotated[
        str | None, typer.Option(help="Optimiser iterations per plan, e.g. 10,30,100.")
    ] = None,
    horizon: Annotated[int | None, typer.Option(min=1, help="Planning horizon.")] = None,
    replan_horizon: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=16,
            help="Horizon of a plan after the previous one ran to its end without reaching "
            "the goal (default: the env's, push-T 10; 0: the first plan's).",
        ),
    ] = None,
    samples: Annotated[
        int | None,
        typer.Option(min=2, help="Sequences per iteration (CEM/MPPI samples, gradient restarts)."),
    ] = None,
    noise_beta: Annotated[
        float | None,
        typer.Option(min=0.0, max=4.0, help="CEM noise colour, 0 white (default: the server's)."),
    ] = None,
    keep_elites: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="CEM elites kept per iteration (default: server's)."),
    ] = None,
    proprio_weight: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="Weight of the goal-proprio distance in the cost (default: the env's)."
        ),
    ] = None,
    door_waypoint: Annotated[
        bool,
        typer.Option(help="Two-room: aim the proprio cost past the door, wall in the way."),
    ] = True,
    baselines: Annotated[bool, typer.Option(help="Also run random and no-op.")] = True,
    proprio: Annotated[
        bool, typer.Option(help="Send proprio (off for models trained without it).")
    ] = True,
    video: Annotated[Path | None, typer.Option(help="Write one video per episode here.")] = None,
    video_format: Annotated[Literal["gif", "mp4"], typer.Option(help="Video format.")] = "gif",
    upload: Annotated[
        Literal["json", "multipart"], typer.Option(help="Images as base64 JSON or files.")
    ] = "json",
    image_format: Annotated[
        Literal["png", "npy"], typer.Option(help="Image encoding: PNG or raw .npy.")
    ] = "png",
    timeout: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Seconds to wait for one plan (a 300 x 30 plan at horizon 10 takes about "
            "100 s on one CPU thread).",
        ),
    ] = 900.0,
    out: Annotated[Path, typer.Option(help="Results JSON (the plot goes beside it, .png).")] = Path(
        "artifacts/eval/results.json"
    ),
) -> None:
    """Closed-loop evaluation: success rate (95% Wilson CI), final metric, plan time."""
    from tqdm import tqdm  # noqa: PLC0415

    from clients.evaluate import EvalConfig, evaluate, write_outputs  # noqa: PLC0415

    try:
        config = EvalConfig(
            env=env,
            episodes=episodes,
            planner=planner,
            seed=seed,
            model=model,
            goal_steps=goal_steps,
            execute_steps=execute_steps,
            max_steps=max_steps,
            budgets=_parse_budgets(budgets),
            horizon=horizon,
            replan_horizon=replan_horizon,
            samples=samples,
            noise_beta=noise_beta,
            keep_elites=keep_elites,
            proprio_weight=proprio_weight,
            door_waypoint=door_waypoint,
            baselines=baselines,
            video_dir=video,
            send_proprio=proprio,
            upload=upload,
            image_format=image_format,
            video_format=video_format,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    from clients.errors import WorldplanError  # noqa: PLC0415

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    runs = len(config.budgets) + (2 if baselines else 0)
    log = out.with_suffix(".episodes.jsonl")  # every finished episode, kept if the run fails
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("", encoding="utf-8")
    try:
        with (
            _client(server, api_key, timeout) as client,
            tqdm(total=runs * episodes, desc="episodes") as bar,
        ):
            result = evaluate(client, config, on_episode=lambda e: _tick(bar, log, e))
    except (WorldplanError, ValueError) as exc:
        typer.echo(f"error: {exc} (finished episodes are in {log})", err=True)
        raise typer.Exit(1) from exc
    plot = write_outputs(result, out)
    typer.echo(_table(result))
    typer.echo(f"wrote {out} and {plot}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this package's commands to the top-level app and to ``worldplan bench``."""
    del bench_app
    app.command("eval")(eval_command)
