"""The models a server plans with: every bundle folder under ``models_dir``, loaded at start-up."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from planner import Guardrails, guardrails_for
from world_model.bundle import BundleError, load_bundle, read_manifest
from world_model.encoders import load_encoder
from world_model.model import WorldModel
from world_model.types import Encoder

log = logging.getLogger(__name__)


class UnknownModelError(LookupError):
    """A request named a model that is not loaded."""


@dataclass(frozen=True)
class LoadedModel:
    """One model bundle, ready to plan with."""

    name: str
    path: Path
    model: WorldModel
    metrics: dict[str, float]

    @property
    def env_id(self) -> str:
        """The env the model was trained on."""
        return self.model.spec.env_id

    def _maze_map(self, door_y: float | None) -> tuple[str, float, float]:
        """``(layout, wall_x, door_y)`` from the bundle's env options (door at ``door_y``)."""
        opts = self.model.spec.env_options
        door = float(door_y if door_y is not None else opts.get("door_y", 32.0))
        return str(opts.get("layout", "umaze")), float(opts.get("wall_x", 32.0)), door

    def tworoom_geometry(self, door_y: float | None = None) -> tuple[float, float] | None:
        """``(wall_x, door_y)`` of a two-room maze model (door at ``door_y``), else None."""
        layout, wall_x, door = self._maze_map(door_y)
        if self.env_id != "worldplan/Maze-v0" or layout != "tworoom":
            return None
        return wall_x, door

    def hard_guardrails(self, door_y: float | None = None) -> Guardrails:
        """The env's hard guardrails (two-room maze: placed at ``door_y``, else the centre)."""
        layout, wall_x, door = self._maze_map(door_y)
        return guardrails_for(self.env_id, layout=layout, wall_x=wall_x, door_y=door)


class ModelRegistry:
    """Loaded models by name (the bundle folder's name); encoders are shared by id."""

    def __init__(self, models: dict[str, LoadedModel]) -> None:
        self._models = dict(models)

    @classmethod
    def from_dir(cls, models_dir: Path, device: str) -> ModelRegistry:
        """Load every bundle folder (one with a ``bundle.json``) directly under ``models_dir``.

        Raises:
            BundleError: a bundle is present but invalid (the server refuses to start on it).
        """
        models: dict[str, LoadedModel] = {}
        encoders: dict[str, Encoder] = {}
        folders = sorted(p for p in models_dir.glob("*/bundle.json")) if models_dir.is_dir() else []
        for manifest_file in folders:
            path = manifest_file.parent
            manifest = read_manifest(path)
            enc_id = str(manifest["encoder"]["id"])
            if enc_id not in encoders:
                encoders[enc_id] = load_encoder(enc_id)
            model = load_bundle(path, encoders[enc_id], torch.device(device))
            metrics = {k: float(v) for k, v in manifest.get("metrics", {}).items()}
            models[path.name] = LoadedModel(path.name, path, model, metrics)
            log.info("loaded model %s (%s) from %s", path.name, model.spec.env_id, path)
        if not models:
            log.warning("no model bundles found under %s", models_dir)
        return cls(models)

    def get(self, name: str) -> LoadedModel:
        """The model called ``name``.

        Raises:
            UnknownModelError: with the names that are loaded.
        """
        try:
            return self._models[name]
        except KeyError:
            known = ", ".join(sorted(self._models)) or "none"
            raise UnknownModelError(f"unknown model {name!r}; loaded: {known}") from None

    def __iter__(self) -> Iterator[LoadedModel]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)


__all__ = ["BundleError", "LoadedModel", "ModelRegistry", "UnknownModelError"]
