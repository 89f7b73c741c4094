"""Model bundles: a folder with ``bundle.json`` and safetensors weights, never pickles.

Layout::

    my_bundle/
      bundle.json            schema version, env, encoder id + sha256 + provenance, image size,
                             action dims, frameskip, history, proprio dim, state labels,
                             normalisation stats, the three configs, file hashes,
                             training data summary, validation metrics, creation time
      predictor.safetensors
      probe.safetensors
      decoder.safetensors

:func:`save_bundle` writes into a temporary sibling folder and renames it into
place, so a bundle is either complete or absent. :func:`load_bundle` checks
everything before building the model and says what is wrong.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from world_model.heads import DecoderConfig, ProbeConfig
from world_model.model import ModelSpec, NormStats, WorldModel
from world_model.predictor import PredictorConfig
from world_model.types import Encoder

log = logging.getLogger(__name__)
_C = TypeVar("_C", PredictorConfig, ProbeConfig, DecoderConfig)

SCHEMA_VERSION = 1
BUNDLE_FORMAT = "worldplan-model-bundle"
MANIFEST = "bundle.json"
#: Weight files and the sub-module of :class:`WorldModel` each holds.
WEIGHT_FILES = {
    "predictor.safetensors": "predictor",
    "probe.safetensors": "state_probe",
    "decoder.safetensors": "decoder",
}
_STAT_NAMES = (
    "action_mean",
    "action_std",
    "proprio_mean",
    "proprio_std",
    "state_mean",
    "state_std",
)
_MAX_MANIFEST_BYTES = 4 << 20


class BundleError(ValueError):
    """A model bundle is missing, malformed or does not fit what the caller asked for."""


def save_bundle(
    model: WorldModel,
    path: str | Path,
    metrics: dict[str, float] | None = None,
    data_info: dict[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as a bundle folder at ``path``, atomically.

    Args:
        model: The model to save (its encoder's weights are not saved, only its id and hash).
        path: Folder to create.
        metrics: Validation metrics (JSON numbers), stored in ``bundle.json``.
        data_info: Training data summary (episodes, env steps, dataset path...), JSON-serialisable.
        overwrite: Replace an existing bundle at ``path``.

    Returns:
        The bundle folder.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(model, metrics or {}, data_info or {})
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        hashes = {}
        for filename, attr in WEIGHT_FILES.items():
            module: nn.Module = getattr(model, attr)
            tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
            save_file(tensors, str(tmp / filename), metadata={"format": "pt"})
            hashes[filename] = _sha256(tmp / filename)
        manifest["files"] = hashes
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _set_permissions(tmp)
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("saved model bundle %s", path)
    return path


def load_bundle(
    path: str | Path,
    encoder: Encoder | None = None,
    device: str | torch.device = "cpu",
    *,
    env_id: str | None = None,
    load_encoder: bool = True,
) -> WorldModel:
    """Load and validate a bundle folder.

    Args:
        path: The bundle folder.
        encoder: The encoder to attach; it must have the bundle's encoder id and weights hash.
            When ``None`` and ``load_encoder`` is true, the registry's ``load_encoder(id)`` is used.
        device: Device for the model.
        env_id: When given, the bundle must be for this env.
        load_encoder: With ``encoder=None``, False loads the model without an encoder (latent-only
            use: rollout, probe, decode; ``encode_images`` then raises).

    Returns:
        The model, in eval mode, on ``device``, with its parameters frozen
        (``requires_grad=False``: gradients still flow to the inputs of a rollout, as
        the gradient planner needs, without computing weight gradients). Call
        ``model.requires_grad_(True)`` to fine-tune.
    """
    path = Path(path)
    manifest = read_manifest(path)
    if env_id is not None and manifest["env_id"] != env_id:
        raise BundleError(f"bundle {path} is for env {manifest['env_id']!r}, not {env_id!r}")
    spec, pred, probe, dec, stats = _parse_manifest(manifest, path)
    try:
        model = WorldModel(spec, pred, probe, dec, stats=stats)
    except ValueError as exc:
        raise BundleError(f"bundle {path}: {exc}") from exc
    for filename, attr in WEIGHT_FILES.items():
        _load_weights(getattr(model, attr), path / filename, manifest["files"][filename])
    model.to(device).eval().requires_grad_(False)
    if encoder is None and load_encoder:
        encoder = _registry_encoder(spec, path)
    if encoder is not None:
        _check_encoder(encoder, spec, path)
        model.attach_encoder(encoder)
    return model


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check ``bundle.json`` (format, schema version, required keys)."""
    path = Path(path)
    file = path / MANIFEST
    if not path.is_dir():
        raise BundleError(f"model bundle {path} is not a folder")
    if not file.is_file():
        raise BundleError(f"model bundle {path} has no {MANIFEST}")
    if file.stat().st_size > _MAX_MANIFEST_BYTES:
        raise BundleError(f"{file} is larger than {_MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{file} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{file} is not a {BUNDLE_FORMAT} manifest")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(
            f"{file} has schema_version {version!r}; this worldplan reads {SCHEMA_VERSION}"
        )
    required = (
        "env_id", "env_options", "encoder", "image_size", "action_dim", "env_action_dim",
        "frameskip", "history", "proprio_dim", "state_labels", "normalisation", "predictor",
        "probe", "decoder", "files",
    )  # fmt: skip
    missing = [k for k in required if k not in manifest]
    if missing:
        raise BundleError(f"{file} lacks required keys {missing}")
    return manifest


def _manifest(
    model: WorldModel, metrics: dict[str, float], data_info: dict[str, Any]
) -> dict[str, Any]:
    spec = model.spec
    enc = model.encoder
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "env_id": spec.env_id,
        "env_options": dict(spec.env_options),
        "encoder": {
            "id": spec.encoder_id,
            "sha256": spec.encoder_sha256,
            "provenance": spec.encoder_provenance,
            "num_patches": model.predictor.config.num_patches,
            "embed_dim": model.predictor.config.embed_dim,
            "input_size": spec.encoder_image_size or (enc.image_size if enc is not None else 0),
        },
        "image_size": spec.image_size,
        "action_dim": spec.action_dim,
        "env_action_dim": spec.env_action_dim,
        "frameskip": spec.frameskip,
        "history": spec.history,
        "proprio_dim": model.predictor.config.proprio_dim,
        "state_labels": list(spec.state_labels),
        "normalisation": {k: v.cpu().tolist() for k, v in model.stats().as_dict().items()},
        "predictor": asdict(model.predictor.config),
        "probe": asdict(model.state_probe.config),
        "decoder": asdict(model.decoder.config),
        "training_data": data_info,
        "metrics": metrics,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        json.dumps(manifest, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metrics and data_info must be finite JSON values: {exc}") from exc
    return manifest


def _parse_manifest(
    m: dict[str, Any], path: Path
) -> tuple[ModelSpec, PredictorConfig, ProbeConfig, DecoderConfig, NormStats]:
    """Build the spec, configs and stats, turning every inconsistency into a BundleError."""
    try:
        enc = m["encoder"]
        spec = ModelSpec(
            env_id=str(m["env_id"]),
            frameskip=m["frameskip"],
            env_action_dim=m["env_action_dim"],
            history=m["history"],
            image_size=m["image_size"],
            state_labels=tuple(str(s) for s in m["state_labels"]),
            encoder_id=str(enc["id"]),
            encoder_sha256=str(enc["sha256"]),
            encoder_provenance=str(enc.get("provenance", "")),
            env_options={str(k): str(v) for k, v in m["env_options"].items()},
            encoder_image_size=int(enc.get("input_size") or 0),
        )
        pred = _config(PredictorConfig, m["predictor"], "predictor")
        probe = _config(ProbeConfig, m["probe"], "probe")
        dec = _config(DecoderConfig, m["decoder"], "decoder")
        stats = NormStats(**{k: _stat(m["normalisation"], k) for k in _STAT_NAMES})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"bundle {path}: invalid {MANIFEST}: {exc}") from exc
    for key, want in (("action_dim", spec.action_dim), ("proprio_dim", pred.proprio_dim)):
        if m[key] != want:
            raise BundleError(f"bundle {path}: {key} {m[key]} disagrees with the configs ({want})")
    if (enc["num_patches"], enc["embed_dim"]) != (pred.num_patches, pred.embed_dim):
        raise BundleError(f"bundle {path}: encoder token shape disagrees with the predictor config")
    missing = [f for f in WEIGHT_FILES if f not in m["files"]]
    if missing:
        raise BundleError(f"bundle {path}: {MANIFEST} lists no hash for {missing}")
    return spec, pred, probe, dec, stats


def _config(cls: type[_C], data: Any, name: str) -> _C:
    if not isinstance(data, dict):
        raise TypeError(f"{name} config must be an object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TypeError(f"{name} config has unknown keys {unknown}")
    return cls(**data)


def _stat(norm: dict[str, Any], key: str) -> Tensor:
    values = norm[key]
    if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
        raise TypeError(f"normalisation.{key} must be a list of numbers")
    return torch.tensor(values, dtype=torch.float32)


def _load_weights(module: nn.Module, file: Path, sha256: str) -> None:
    """Load safetensors into ``module`` after checking the file hash, keys and shapes."""
    if not file.is_file():
        raise BundleError(f"model bundle {file.parent} is missing {file.name}")
    if _sha256(file) != sha256:
        raise BundleError(f"{file} does not match the sha256 in {MANIFEST} (corrupted or replaced)")
    try:
        tensors = load_file(str(file))
    except Exception as exc:  # safetensors raises its own error types
        raise BundleError(f"{file} is not a readable safetensors file: {exc}") from exc
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise BundleError(f"{file}: missing tensors {missing[:5]}, unexpected tensors {extra[:5]}")
    for key, want in expected.items():
        got = tensors[key]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise BundleError(
                f"{file}: tensor {key} is {tuple(got.shape)} {got.dtype}, the config needs "
                f"{tuple(want.shape)} {want.dtype}"
            )
    module.load_state_dict(tensors, strict=True)


def _check_encoder(encoder: Encoder, spec: ModelSpec, path: Path) -> None:
    if encoder.encoder_id != spec.encoder_id:
        raise BundleError(
            f"bundle {path} was trained with encoder {spec.encoder_id!r}, "
            f"got {encoder.encoder_id!r}"
        )
    if encoder.weights_sha256 != spec.encoder_sha256:
        raise BundleError(
            f"bundle {path} was trained with {spec.encoder_id!r} weights sha256 "
            f"{spec.encoder_sha256[:16]}..., the given encoder has "
            f"{encoder.weights_sha256[:16]}...: load the matching weights"
        )


def _registry_encoder(spec: ModelSpec, path: Path) -> Encoder:
    """The bundle's encoder from the registry, at the input size the bundle was trained with."""
    try:
        registry = importlib.import_module("world_model.encoders")
    except ImportError as exc:
        raise BundleError(
            f"bundle {path} needs encoder {spec.encoder_id!r} but the encoder registry is not "
            "available; pass encoder= or load_encoder=False"
        ) from exc
    size = spec.encoder_image_size or None
    enc: Encoder = registry.load_encoder(spec.encoder_id, image_size=size)
    return enc


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _set_permissions(folder: Path) -> None:
    """Make the bundle world-readable (``mkdtemp`` makes the folder private)."""
    folder.chmod(0o755)
    for file in folder.iterdir():
        file.chmod(0o644)


def _replace_dir(tmp: Path, path: Path) -> None:
    """Move the finished ``tmp`` folder to ``path``, replacing an old bundle there."""
    if not path.exists():
        tmp.replace(path)
        return
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    path.replace(old)
    tmp.replace(path)
    shutil.rmtree(old, ignore_errors=True)
