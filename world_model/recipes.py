"""Training recipes of the shipped model bundles, and the build that ``make models`` runs.

Each :class:`Recipe` says how one shipped bundle is made: the env and its options, the
data (episodes, steps per episode, policy mix, image size) and the training run
(history, frameskip, optimiser steps, predictor size). :func:`build_models` runs
collect -> encode -> train for each and writes ``<out>/<name>/`` bundles, plus
``<out>/build.json`` with what ran and how long each stage took. Data and checkpoints
go to a work folder and every stage resumes, so an interrupted build continues where it
stopped.

The recipes are sized for the 2-core development machine (one torch thread). ``minutes`` is an
estimate from timings taken there (push-T, offline pyramid encoder, predictor with 2 x 2
patch merging, batch 32, one thread): 0.27 s per training step on a quiet machine, 0.7 to
1.0 s while it was shared with other jobs (load about 8 on 2 cores); 17 s to collect and
11 s to encode 30 episodes of 100 steps under that load. The estimates assume about
0.35 s per step; the times a build really took are written to ``build.json`` and are the
ones the README quotes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from world_model.data import CollectConfig, collect, encode_dataset
from world_model.train import TrainConfig, train
from world_model.types import Encoder

log = logging.getLogger(__name__)

BUILD_REPORT = "build.json"


@dataclass(frozen=True)
class Recipe:
    """How one shipped bundle is made."""

    #: Bundle folder name under the models folder.
    name: str
    #: Registered env id.
    env_id: str
    #: Episodes collected.
    episodes: int
    #: Env steps per episode.
    steps: int
    #: Training hyper-parameters (history, frameskip, steps, sizes...).
    train: TrainConfig
    #: A second run started from the first one's bundle (e.g. with a rollout loss); the
    #: first run's bundle then stays in the work folder as ``<name>/base``.
    finetune: TrainConfig | None = None
    #: Env constructor options (e.g. the maze layout).
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    #: ``"scripted"``, ``"random"`` or ``"mix"``.
    policy: str = "mix"
    #: With ``policy="mix"``: share of scripted episodes.
    scripted_fraction: float = 0.5
    #: Constructor options of the scripted policy.
    scripted_options: dict[str, Any] = field(default_factory=dict)
    #: Rendered frame side (px).
    image_size: int = 64
    #: Collection seed.
    seed: int = 0
    #: Estimated wall-clock minutes of the whole recipe on the 2-core development machine.
    minutes: float = 0.0

    def collect_config(self) -> CollectConfig:
        """The collection settings of this recipe."""
        return CollectConfig(
            env_id=self.env_id,
            episodes=self.episodes,
            steps=self.steps,
            policy=self.policy,
            scripted_fraction=self.scripted_fraction,
            scripted_options=dict(self.scripted_options),
            image_size=self.image_size,
            seed=self.seed,
            env_kwargs=dict(self.env_kwargs),
        )

    def with_threads(self, threads: int) -> Recipe:
        """The same recipe trained with ``threads`` torch threads."""
        fine = replace(self.finetune, threads=threads) if self.finetune is not None else None
        return replace(self, train=replace(self.train, threads=threads), finetune=fine)

    def scaled(self, factor: float) -> Recipe:
        """A smaller copy (episodes and training steps times ``factor``), for quick checks."""
        if not 0 < factor <= 1:
            raise ValueError(f"scale factor must be in (0, 1], got {factor}")
        episodes = max(2, round(self.episodes * factor))
        fine = _scaled(self.finetune, factor) if self.finetune is not None else None
        return replace(self, episodes=episodes, train=_scaled(self.train, factor), finetune=fine)


def _scaled(cfg: TrainConfig, factor: float) -> TrainConfig:
    steps = max(1, round(cfg.steps * factor))
    every = max(1, min(cfg.val_every, steps))
    return replace(cfg, steps=steps, val_every=every, checkpoint_every=every,
                   warmup=min(cfg.warmup, steps))  # fmt: skip


#: One thread: on the shared 2-core machine a second thread stalls whenever the other core is
#: busy (measured: 4 s per step with 2 threads against 0.7 s with 1 under load).
_COMMON = TrainConfig(threads=1, batch_size=32, lr=5e-4, val_every=250, checkpoint_every=500)

#: The shipped defaults, in build order.
RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="pusht",
            env_id="worldplan/PushT-v0",
            env_kwargs={"terminate_on_success": False},
            episodes=1000,
            steps=100,
            scripted_fraction=0.7,
            # Each scripted episode draws its pace: from the evaluation goals' (0.3, the
            # reference data's action std) up to the whole action box.
            scripted_options={"speed": [0.3, 1.0]},
            train=replace(_COMMON, history=3, frameskip=5, steps=12000),
            minutes=50,
        ),
        Recipe(
            name="maze-umaze",
            env_id="worldplan/Maze-v0",
            env_kwargs={"layout": "umaze"},
            episodes=150,
            steps=150,
            train=replace(_COMMON, history=3, frameskip=5, steps=1500),
            minutes=10,
        ),
        Recipe(
            name="maze-tworoom",
            env_id="worldplan/Maze-v0",
            env_kwargs={"layout": "tworoom"},
            episodes=300,
            steps=150,
            train=replace(_COMMON, history=3, frameskip=5, steps=5000),
            minutes=30,
        ),
        Recipe(
            name="granular",
            env_id="worldplan/Granular-v0",
            episodes=600,
            steps=20,
            scripted_fraction=0.5,
            train=replace(_COMMON, history=3, frameskip=1, steps=3000),
            minutes=25,
        ),
    )
}


def default_encoder_name() -> str:
    """The registry's offline encoder (the first entry of the ``offline`` family)."""
    from world_model import encoders  # noqa: PLC0415 (the registry imports heavy modules)

    offline = [s.name for s in encoders.list_encoders() if s.family == "offline"]
    if not offline:
        raise ValueError("the encoder registry has no offline encoder; pass an encoder name")
    return offline[0]


def select(names: Sequence[str] | None) -> list[Recipe]:
    """The recipes called ``names`` (all when empty), or a clear error for an unknown name."""
    if not names:
        return list(RECIPES.values())
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise ValueError(f"unknown recipes {unknown}; known: {', '.join(RECIPES)}")
    return [RECIPES[n] for n in names]


def build_one(
    recipe: Recipe, encoder: Encoder, out: Path, work: Path, *, progress: bool = True
) -> dict[str, Any]:
    """Collect, encode and train one recipe; the bundle goes to ``out/<name>``."""
    folder = work / recipe.name
    data = folder / "data.h5"
    times: dict[str, float] = {}
    t0 = time.monotonic()
    collect(recipe.collect_config(), data, progress=progress)
    times["collect_s"] = time.monotonic() - t0
    t0 = time.monotonic()
    key = encode_dataset(data, encoder, progress=progress)
    times["encode_s"] = time.monotonic() - t0
    t0 = time.monotonic()
    first = folder / "base" if recipe.finetune is not None else out / recipe.name
    result = train(data, first, recipe.train, feature_key=key,
                   checkpoints=folder / "checkpoints", progress=progress)  # fmt: skip
    times["train_s"] = time.monotonic() - t0
    if recipe.finetune is not None:
        t0 = time.monotonic()
        result = train(data, out / recipe.name, recipe.finetune, feature_key=key,
                       checkpoints=folder / "checkpoints-finetune", progress=progress,
                       init=first)  # fmt: skip
        times["finetune_s"] = time.monotonic() - t0
    log.info("built %s in %.0f s", recipe.name, sum(times.values()))
    return {
        "recipe": _recipe_dict(recipe),
        "encoder": {"id": encoder.encoder_id, "sha256": encoder.weights_sha256},
        "seconds": times,
        "metrics": result.metrics,
    }


def build_models(
    out: str | Path,
    recipes: Sequence[Recipe],
    load: Callable[[], Encoder],
    *,
    work: str | Path = "artifacts/models-build",
    progress: bool = True,
) -> dict[str, Any]:
    """Build every recipe into ``out/<name>/`` and write ``out/build.json``; return its content.

    Args:
        out: The models folder.
        recipes: What to build.
        load: Returns the frozen encoder to encode with (called once).
        work: Folder for datasets and checkpoints (kept, so a re-run resumes).
        progress: Show progress bars.
    """
    out, work = Path(out), Path(work)
    out.mkdir(parents=True, exist_ok=True)
    encoder = load()
    report_path = out / BUILD_REPORT
    report: dict[str, Any] = {"models": {}}
    if report_path.is_file():
        report = json.loads(report_path.read_text())
    for recipe in recipes:
        entry = build_one(recipe, encoder, out, work, progress=progress)
        report["models"][recipe.name] = entry
        tmp = report_path.with_name(f".{BUILD_REPORT}.tmp")
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        tmp.replace(report_path)
    return report


def _recipe_dict(recipe: Recipe) -> dict[str, Any]:
    return asdict(recipe)
