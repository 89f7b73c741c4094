"""``worldplan eval-model`` and ``worldplan bench model``.

Heavy imports (torch, h5py) happen inside the commands so ``worldplan --help`` stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from world_model.model import WorldModel
    from world_model.types import Encoder

log = logging.getLogger(__name__)


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise typer.BadParameter(
            f"expected comma-separated ints, got {text!r}", param_hint=option
        ) from exc
    if not values:
        raise typer.BadParameter("give at least one value", param_hint=option)
    return values


def eval_model(  # noqa: PLR0917 - typer maps each parameter to an option
    bundle: Annotated[Path, typer.Option(help="Model bundle folder.")],
    data: Annotated[Path, typer.Option(help="Dataset (HDF5) from `worldplan collect`.")],
    horizons: Annotated[
        str, typer.Option(help="Comma-separated horizons in env steps.")
    ] = "1,5,25",
    windows_per_episode: Annotated[int, typer.Option(min=1, help="Most windows per episode.")] = 8,
    max_episodes: Annotated[int, typer.Option(min=0, help="Most episodes (0: all).")] = 0,
    split: Annotated[
        str,
        typer.Option(
            help="auto: the bundle's validation split on its own dataset, else all; val; all."
        ),
    ] = "auto",
    proxy_states: Annotated[
        int, typer.Option(min=0, help="States rendered for the encoder ranking proxy (0: skip).")
    ] = 300,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 2,
    out: Annotated[
        Path | None, typer.Option(help="JSON file (default artifacts/eval/<bundle>.json).")
    ] = None,
) -> None:
    """Open-loop latent MSE and state-probe error at several horizons vs copy-last-frame."""
    import torch  # noqa: PLC0415

    from world_model import evaluate  # noqa: PLC0415
    from world_model.bundle import read_manifest  # noqa: PLC0415

    torch.set_num_threads(threads)
    try:
        cfg = evaluate.EvalConfig(
            horizons=_ints(horizons, "--horizons"),
            windows_per_episode=windows_per_episode,
            max_episodes=max_episodes,
            split=split,
            proxy_states=proxy_states,
        )
        info = dict(read_manifest(bundle).get("training_data", {}))
        model = _load_for_eval(bundle)
        result = evaluate.evaluate_model(model, data, cfg, info)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    path = out or Path("artifacts/eval") / f"{bundle.name}.json"
    evaluate.write_json(result, path)
    typer.echo(evaluate.format_table(result))
    typer.echo(f"\nresults written to {path}")


def _load_for_eval(bundle: Path) -> WorldModel:
    """The bundle with its encoder when the registry has it (for the proxy), else without."""
    from world_model.bundle import load_bundle  # noqa: PLC0415

    try:
        return load_bundle(bundle)
    except Exception as exc:  # the registry may lack the encoder or its weights here
        log.warning(
            "encoder not available (%s): features come from the dataset's cache and the "
            "encoder ranking proxy is skipped",
            exc,
        )
        return load_bundle(bundle, load_encoder=False)


def bench_model(  # noqa: PLR0917 - typer maps each parameter to an option
    bundle: Annotated[
        Path | None, typer.Option(help="Model bundle to time (its encoder too).")
    ] = None,
    encoder: Annotated[
        str | None,
        typer.Option(help="Without --bundle: registry encoder to time with a fresh model."),
    ] = None,
    num_patches: Annotated[int, typer.Option(min=1, help="Without bundle/encoder: tokens N.")] = 64,
    embed_dim: Annotated[
        int, typer.Option(min=1, help="Without bundle/encoder: feature dim D.")
    ] = 64,
    batch: Annotated[int, typer.Option(min=1, help="Candidate action sequences.")] = 256,
    horizon: Annotated[int, typer.Option(min=1, help="Planning steps per rollout.")] = 5,
    context: Annotated[int, typer.Option(min=1, help="Context frames of the rollout.")] = 1,
    repeats: Annotated[int, typer.Option(min=1, help="Timed calls per row (median).")] = 3,
    matmul_size: Annotated[int, typer.Option(min=1, help="Side of the peak-FLOP/s matmul.")] = 2048,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 2,
    json_path: Annotated[Path, typer.Option("--json", help="JSON results file.")] = Path(
        "artifacts/bench/model.json"
    ),
) -> None:
    """Encoder images/s and predictor rollout steps/s, with the share of peak matmul FLOP/s."""
    import torch  # noqa: PLC0415

    from world_model import bench  # noqa: PLC0415

    torch.set_num_threads(threads)
    try:
        cfg = bench.BenchConfig(
            batch=batch,
            horizon=horizon,
            context=context,
            repeats=repeats,
            matmul_size=matmul_size,
        )
        model, enc = _bench_subject(bundle, encoder, num_patches, embed_dim)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    result = bench.run_bench(model, cfg, enc)
    bench.write_json(result, json_path)
    typer.echo(bench.format_table(result))
    typer.echo(f"\nresults written to {json_path}")


def _bench_subject(
    bundle: Path | None, encoder: str | None, num_patches: int, embed_dim: int
) -> tuple[WorldModel, Encoder | None]:
    """The model (and encoder) to time: a bundle, or a fresh push-T-shaped model."""
    from world_model.bundle import load_bundle  # noqa: PLC0415
    from world_model.model import ModelSpec, WorldModel, default_configs  # noqa: PLC0415

    if bundle is not None:
        try:
            model = load_bundle(bundle)
        except Exception as exc:  # the registry may lack the encoder's weights here
            log.warning("timing the predictor only: cannot load the bundle's encoder (%s)", exc)
            model = load_bundle(bundle, load_encoder=False)
        return model, model.encoder
    enc: Encoder | None = None
    if encoder is not None:
        from world_model.encoders import load_encoder  # noqa: PLC0415

        enc = load_encoder(encoder)
        num_patches, embed_dim = enc.num_patches, enc.embed_dim
    spec = ModelSpec(
        env_id="worldplan/PushT-v0",
        frameskip=5,
        env_action_dim=2,
        history=3,
        image_size=enc.image_size if enc is not None else 64,
        state_labels=(
            "agent_x",
            "agent_y",
            "block_x",
            "block_y",
            "block_angle_cos",
            "block_angle_sin",
        ),
        encoder_id=enc.encoder_id if enc is not None else "synthetic",
    )
    torch_model = WorldModel(spec, *default_configs(spec, num_patches, embed_dim, proprio_dim=4))
    return torch_model, enc


def register_model_commands(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add ``eval-model`` to the app and ``model`` to ``worldplan bench``."""
    app.command("eval-model")(eval_model)
    bench_app.command("model")(bench_model)
