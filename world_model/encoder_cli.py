"""``worldplan encoder ...``: the registry, official weights, the offline encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def encoder_list() -> None:
    """List the registered encoders and whether their weights are available here."""
    from world_model.encoders import default_cache_dir, list_encoders  # noqa: PLC0415

    cache = default_cache_dir()
    rows = [("name", "family", "size", "weights", "description")]
    for spec in list_encoders():
        if spec.family == "dinov2":
            ready = "cached" if (cache / f"{spec.name}.safetensors").is_file() else "not fetched"
        else:
            ready = "none needed"
        rows.append((spec.name, spec.family, str(spec.default_image_size), ready, spec.description))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    typer.echo(f"cache: {cache}")


def encoder_fetch(
    name: Annotated[str, typer.Argument(help="Registry id, e.g. dinov2_vits14.")],
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where to keep the weights. [default: $WORLDPLAN_ENCODER_CACHE or "
            "~/.cache/worldplan/encoders]"
        ),
    ] = None,
    sha256: Annotated[
        str | None,
        typer.Option(
            help="Expected sha256 of the official .pth; without it the hash of what "
            "was downloaded is recorded in the manifest (trust on first use)."
        ),
    ] = None,
    url: Annotated[str | None, typer.Option(help="A mirror of the official file.")] = None,
    source: Annotated[
        Path | None,
        typer.Option("--from", help="Convert this local .pth instead of downloading."),
    ] = None,
) -> None:
    """Download the official checkpoint and convert it once to verified safetensors."""
    from world_model.encoders import WeightsError, fetch_encoder  # noqa: PLC0415

    try:
        out = fetch_encoder(name, cache_dir, sha256=sha256, url=url, source=source)
    except (KeyError, WeightsError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(f"{name}: {out} (manifest {out.with_suffix('.json').name})")


def encoder_compare(
    *,
    n: Annotated[int, typer.Option(help="Perturbed states per proxy case.")] = 300,
    seed: Annotated[
        list[int] | None, typer.Option("--seed", help="Seed; repeat for several. [default: 0]")
    ] = None,
    frame_size: Annotated[int, typer.Option(help="Rendered frame side in pixels.")] = 64,
    threads: Annotated[int, typer.Option(help="torch threads for encoding and timing.")] = 1,
    random_vit: Annotated[
        bool, typer.Option("--random-vit", help="Add a random-init ViT-S/14 at 112 px (slow).")
    ] = False,
    autoencoder_steps: Annotated[
        int, typer.Option(help="Train the conv autoencoder candidate this many steps (0: skip).")
    ] = 0,
    json_path: Annotated[
        Path, typer.Option("--json", help="Where to write the results as JSON.")
    ] = Path("artifacts/bench/encoders.json"),
) -> None:
    """Ranking proxy (latent vs true distance to the goal) and images/s of candidate encoders."""
    import torch  # noqa: PLC0415

    from world_model.encoders import compare  # noqa: PLC0415

    torch.set_num_threads(threads)
    cfg = compare.CompareConfig(n=n, seeds=tuple(seed or (0,)), frame_size=frame_size)
    candidates = compare.default_candidates(random_vit, autoencoder_steps, seed=cfg.seeds[0])
    rows = compare.compare(candidates, cfg)
    typer.echo(compare.format_table(rows))
    compare.write_json(json_path, rows, cfg)
    typer.echo(f"wrote {json_path}")


def register_encoder_commands(app: typer.Typer) -> None:
    """Add ``worldplan encoder list|fetch|...`` to ``app``."""
    encoder_app = typer.Typer(
        help="Frozen image encoders: registry, weights.", no_args_is_help=True
    )
    encoder_app.command("list")(encoder_list)
    encoder_app.command("fetch")(encoder_fetch)
    encoder_app.command("compare")(encoder_compare)
    app.add_typer(encoder_app, name="encoder")
