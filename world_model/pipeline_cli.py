"""``worldplan collect | encode | train | models build``: the path of one model, as commands.

Heavy modules (torch, h5py, the envs) are imported inside the commands so that
``worldplan --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

log = logging.getLogger(__name__)

_ENVS = "pusht, maze, granular, or a full id such as worldplan/PushT-v0"


def collect_cmd(
    ctx: typer.Context,
    *,
    env: Annotated[str, typer.Option(help=f"Env ({_ENVS}).")],
    episodes: Annotated[int, typer.Option(help="Episodes the dataset should hold in total.")],
    out: Annotated[Path, typer.Option(help="Dataset file (.h5); an existing one is resumed.")],
    steps: Annotated[int, typer.Option(help="Env steps per episode.")] = 100,
    policy: Annotated[str, typer.Option(help="scripted, random or mix.")] = "mix",
    scripted_fraction: Annotated[
        float, typer.Option(help="With --policy mix: share of scripted episodes.")
    ] = 0.5,
    image_size: Annotated[int, typer.Option(help="Rendered frame side in pixels.")] = 64,
    seed: Annotated[int, typer.Option(help="Base seed; episode i depends on (seed, i).")] = 0,
) -> None:
    """Run policies in an env into an HDF5 episode dataset.

    Extra ``--name value`` pairs are env options, e.g. ``--layout tworoom``.
    """
    from world_model import data  # noqa: PLC0415

    try:
        cfg = data.CollectConfig(
            env_id=data.resolve_env_id(env),
            episodes=episodes,
            steps=steps,
            policy=policy,
            scripted_fraction=scripted_fraction,
            image_size=image_size,
            seed=seed,
            env_kwargs=data.parse_env_kwargs(list(ctx.args)),
        )
        written = data.collect(cfg, out)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    total = len(data.complete_episodes(out))
    typer.echo(f"{out}: {total} complete episodes ({written} written now)")


def encode_cmd(
    *,
    data_path: Annotated[Path, typer.Option("--data", help="Dataset file from collect.")],
    encoder: Annotated[str, typer.Option(help="Encoder registry id.")],
    weights: Annotated[
        Path | None, typer.Option(help="Encoder weights file (default: the registry's).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Frames per encoder batch.")] = 64,
    threads: Annotated[int, typer.Option(help="torch threads.")] = 2,
) -> None:
    """Cache the frozen encoder's features (fp16) of every frame in the dataset file."""
    import torch  # noqa: PLC0415

    from world_model import data  # noqa: PLC0415
    from world_model.encoders import load_encoder  # noqa: PLC0415

    torch.set_num_threads(threads)
    try:
        enc = load_encoder(encoder, weights)
        key = data.encode_dataset(data_path, enc, batch_size=batch_size)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"{data_path}: features cached under {key!r}")


def train_cmd(
    *,
    data_path: Annotated[Path, typer.Option("--data", help="Encoded dataset file.")],
    env: Annotated[str, typer.Option(help=f"Env the dataset must be of ({_ENVS}).")],
    out: Annotated[Path, typer.Option(help="Model bundle folder to write.")],
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 2000,
    batch: Annotated[int, typer.Option(help="Windows per batch.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak AdamW learning rate.")] = 5e-4,
    history: Annotated[int, typer.Option(help="Frames of context.")] = 3,
    frameskip: Annotated[int, typer.Option(help="Env steps per planning step.")] = 5,
    val_every: Annotated[int, typer.Option(help="Validate every N steps.")] = 250,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of init, split and batch order.")] = 0,
    threads: Annotated[int, typer.Option(help="torch.set_num_threads.")] = 1,
    depth: Annotated[int, typer.Option(help="Predictor blocks.")] = 4,
    width: Annotated[int, typer.Option(help="Predictor width.")] = 128,
    heads: Annotated[int, typer.Option(help="Predictor attention heads.")] = 4,
    merge: Annotated[int, typer.Option(help="Predictor patch merge factor.")] = 2,
    warmup: Annotated[int, typer.Option(help="Linear warm-up steps.")] = 100,
    rollout_steps: Annotated[
        int, typer.Option(help="Planning steps of an open-loop rollout loss (0: none).")
    ] = 0,
    rollout_weight: Annotated[float, typer.Option(help="Weight of the rollout loss.")] = 1.0,
    init: Annotated[
        Path | None, typer.Option(help="Bundle to start from (fine-tuning), not a fresh init.")
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="Feature cache key (default: the only one).")
    ] = None,
    checkpoints: Annotated[
        Path | None, typer.Option(help="Checkpoint folder (default: <out>.ckpt).")
    ] = None,
    no_resume: Annotated[
        bool, typer.Option("--no-resume", help="Start over, deleting old checkpoints.")
    ] = False,
) -> None:
    """Train predictor, state probe and decoder on cached features; write a model bundle."""
    from world_model import data, train  # noqa: PLC0415

    try:
        env_id = data.resolve_env_id(env)
        got = data.read_meta(data_path)["env_id"]
        if got != env_id:
            raise ValueError(f"{data_path} holds {got} episodes, not {env_id}")
        cfg = train.TrainConfig(
            steps=steps, batch_size=batch, lr=lr, history=history, frameskip=frameskip,
            val_every=val_every, checkpoint_every=checkpoint_every, seed=seed, threads=threads,
            depth=depth, width=width, heads=heads, merge=merge, warmup=warmup,
            rollout_steps=rollout_steps, rollout_weight=rollout_weight,
        )  # fmt: skip
        result = train.train(data_path, out, cfg, feature_key=features, checkpoints=checkpoints,
                             resume=not no_resume, init=init)  # fmt: skip
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(json.dumps(result.metrics, indent=2, sort_keys=True))
    typer.echo(f"bundle written to {result.bundle} in {result.seconds:.0f} s")


def models_build_cmd(
    *,
    out: Annotated[Path, typer.Option(help="Models folder; bundles go to <out>/<name>/.")] = Path(
        "models"
    ),
    only: Annotated[
        list[str] | None, typer.Option(help="Recipe to build; repeat for several. [default: all]")
    ] = None,
    encoder: Annotated[
        str | None, typer.Option(help="Encoder id (default: the registry's offline encoder).")
    ] = None,
    work: Annotated[
        Path, typer.Option(help="Folder for datasets and checkpoints (a re-run resumes).")
    ] = Path("artifacts/models-build"),
    scale: Annotated[
        float, typer.Option(help="Shrink episodes and training steps by this factor (checks).")
    ] = 1.0,
    threads: Annotated[
        int | None, typer.Option(help="torch threads for training (default: the recipe's).")
    ] = None,
) -> None:
    """Rebuild the shipped model bundles: collect -> encode -> train for each recipe."""
    from world_model import recipes  # noqa: PLC0415
    from world_model.encoders import load_encoder  # noqa: PLC0415

    try:
        chosen = [r.scaled(scale) if scale != 1.0 else r for r in recipes.select(only)]
        if threads is not None:
            chosen = [r.with_threads(threads) for r in chosen]
        name = encoder or recipes.default_encoder_name()
        report = recipes.build_models(out, chosen, lambda: load_encoder(name), work=work)
    except (ValueError, KeyError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    for model, entry in report["models"].items():
        secs = entry["seconds"]
        typer.echo(f"{model}: " + ", ".join(f"{k} {v:.0f}" for k, v in secs.items()))


def models_list_cmd() -> None:
    """Print the build recipes of the shipped bundles."""
    from world_model import recipes  # noqa: PLC0415

    for r in recipes.RECIPES.values():
        t, f = r.train, r.finetune
        fine = (
            f" + {f.steps} fine-tuning steps with a {f.rollout_steps}-step rollout loss"
            if f is not None
            else ""
        )
        typer.echo(
            f"{r.name}: {r.env_id} {r.env_kwargs} episodes {r.episodes} x {r.steps} steps, "
            f"policy {r.policy}, {r.image_size} px, history {t.history}, frameskip "
            f"{t.frameskip}, {t.steps} training steps{fine} (~{r.minutes:.0f} min here)"
        )


def register_pipeline_commands(app: typer.Typer) -> None:
    """Add collect, encode, train and ``models build|list`` to ``app``."""
    extra = {"allow_extra_args": True, "ignore_unknown_options": True}
    app.command("collect", context_settings=extra)(collect_cmd)
    app.command("encode")(encode_cmd)
    app.command("train")(train_cmd)
    models = typer.Typer(help="The shipped model bundles.", no_args_is_help=True)
    models.command("build")(models_build_cmd)
    models.command("list")(models_list_cmd)
    app.add_typer(models, name="models")
