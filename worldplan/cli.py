"""``worldplan``: the command line.

Each package owns its commands in its own ``cli`` module and registers them
here; heavy imports (torch, the server) happen inside the commands, so
``worldplan --help`` stays fast.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

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


@app.command()
def demo(  # noqa: PLR0917 - typer maps each parameter to an option
    out: Annotated[Path, typer.Option(help="Folder for the demo's outputs.")] = Path(
        "artifacts/demo"
    ),
    env: Annotated[str, typer.Option(help="pusht, umaze, tworoom or granular.")] = "pusht",
    models_dir: Annotated[Path, typer.Option(help="Model bundles to serve.")] = Path("models"),
    seed: Annotated[int, typer.Option(help="Episode seed.")] = 100_000,
    max_steps: Annotated[int, typer.Option(help="Env steps of the episode.")] = 50,
    samples: Annotated[int, typer.Option(help="CEM samples per iteration.")] = 100,
    iterations: Annotated[int, typer.Option(help="CEM iterations per plan.")] = 10,
) -> None:
    """Serve the shipped bundles, plan a closed-loop episode through the client, save previews.

    Writes the episode as a GIF (observation | goal), the first plan's operator preview
    (HTML and PNG) and a JSON summary under ``out``.
    """
    from clients.demo import DemoConfig, run_demo  # noqa: PLC0415 - keep --help fast

    key = secrets.token_hex(16)
    app_factory = _in_process_app_for(models_dir)
    cfg = DemoConfig(out, env, seed, max_steps, samples, iterations)
    summary = run_demo(app_factory(key), key, cfg)
    for line in summary:
        typer.echo(line)


@app.command("eval-oracle")
def eval_oracle(  # noqa: PLR0917 - typer maps each parameter to an option
    bundle: Annotated[Path, typer.Option(help="Model bundle: env, encoder, normalisation.")],
    episodes: Annotated[int, typer.Option(min=1, help="Episodes (seeds).")] = 8,
    seed: Annotated[int, typer.Option(min=0, help="Base seed, as worldplan eval's.")] = 100_000,
    goal_steps: Annotated[int, typer.Option(min=1, help="Env steps to the goal.")] = 25,
    max_steps: Annotated[
        int | None,
        typer.Option(min=1, help="Env steps per episode (default: the env's time limit)."),
    ] = None,
    horizon: Annotated[int, typer.Option(min=1, help="Planning steps.")] = 5,
    samples: Annotated[int, typer.Option(min=2, help="CEM samples per iteration.")] = 100,
    iterations: Annotated[int, typer.Option(min=1, help="CEM iterations per plan.")] = 10,
    proprio_weight: Annotated[
        float, typer.Option(min=0.0, help="Weight of the goal-proprio distance.")
    ] = 1.0,
    init_std: Annotated[
        float, typer.Option(min=0.0, help="Initial sampling std (normalised actions).")
    ] = 1.0,
    warm_start: Annotated[
        bool, typer.Option(help="Warm-start each plan from the last, as the service's session.")
    ] = True,
    noise_beta: Annotated[
        float, typer.Option(min=0.0, max=4.0, help="Colour of the sampling noise (0: white).")
    ] = 0.0,
    keep_elites: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of elites kept between iterations.")
    ] = 0.0,
    cost: Annotated[
        Literal["encoder", "state"],
        typer.Option(help="Score with the bundle's encoder or the env's own success error."),
    ] = "encoder",
    out: Annotated[Path, typer.Option(help="Results JSON.")] = Path("artifacts/eval/oracle.json"),
) -> None:
    """Upper bound of the loop: CEM with the simulator as the model and the bundle's cost.

    Same goals, seeds, encoder cost and search as ``worldplan eval --planner cem``; the
    gap between the two is the learned predictor's share of the failures.
    """
    from clients.report import write_json  # noqa: PLC0415 - keep --help fast
    from worldplan.oracle import OracleConfig, evaluate_oracle  # noqa: PLC0415

    try:
        config = OracleConfig(
            horizon,
            samples,
            iterations,
            proprio_weight,
            init_std=init_std,
            warm_start=warm_start,
            noise_beta=noise_beta,
            keep_elites=keep_elites,
            cost=cost,
        )
        result = evaluate_oracle(
            bundle, config, episodes, seed=seed, goal_steps=goal_steps, max_steps=max_steps
        )
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    s = result["summary"]
    typer.echo(
        f"oracle {result['env_id']} {result['env_options']}: {s['successes']}/{s['episodes']} "
        f"= {s['success_rate']:.2f} [{s['ci_low']:.2f}, {s['ci_high']:.2f}], "
        f"mean {s['metric_name']} {s['mean_final_metric']:.3f}, plan ms {s['mean_plan_ms']:.0f}"
    )
    write_json(out, result)
    typer.echo(f"wrote {out}")


def _in_process_app_for(models_dir: Path | None) -> Callable[[str], object]:
    """The service as an ASGI app in this process, accepting a given API key.

    ``models_dir=None`` keeps the settings' folder (``WORLDPLAN_MODELS_DIR`` or ``models``).
    """

    def factory(api_key: str) -> object:
        from server.app import create_app  # noqa: PLC0415 - keep --help fast
        from server.settings import Settings  # noqa: PLC0415

        extra = {} if models_dir is None else {"models_dir": models_dir}
        return create_app(Settings(api_keys=[api_key], **extra))  # type: ignore[list-item, arg-type]

    return factory


# This module is the composition root: the one place that hands the server to a client.
clients.cli.set_app_factory(_in_process_app_for(None))


def main() -> None:
    """Run the ``worldplan`` command line."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
