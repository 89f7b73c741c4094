"""The encoder registry: frozen image encoders behind :class:`world_model.types.Encoder`.

* ``wp-offline-pyramid-v1`` (:data:`OFFLINE_DEFAULT`): the default where the official
  weights cannot be had. Training-free: a fixed multi-scale Gaussian pyramid of the
  64 px frame as 8 x 8 tokens of 84 dims. It is not DINOv2 and says so in its
  provenance; it beats raw pixels on the ranking proxy (``worldplan encoder compare``).
* ``wp-pixels-64px-g8``: raw pixels on the same token grid, the proxy's baseline.
* ``dinov2_vits14`` / ``dinov2_vitb14``: the DINOv2 backbones with the official
  weights, which must be fetched once where a network exists
  (``worldplan encoder fetch NAME``) or converted from a local ``.pth``.

Weights are loaded from safetensors only, verified by sha256 (see
:mod:`world_model.encoders.weights`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from world_model.encoders.base import EncoderInputError, FrozenEncoder
from world_model.encoders.dinov2 import CONFIGS, OFFICIAL_URLS, DinoV2Encoder, state_dict_layout
from world_model.encoders.offline import (
    OFFLINE_DEFAULT,
    PIXEL_BASELINE,
    offline_pyramid_v1,
    pixel_baseline,
)
from world_model.encoders.weights import (
    Manifest,
    WeightsError,
    check_layout,
    convert_checkpoint,
    default_cache_dir,
    download,
    load_verified,
)

log = logging.getLogger(__name__)

#: sha256 of the official ``.pth`` files. Deliberately unpinned: the files could not be
#: downloaded and checked where this registry was written, and an invented hash would be
#: worse than none. Until they are pinned, ``fetch`` records the hash of what it downloaded
#: in the manifest (trust on first use) and verifies a hash given with ``--sha256``.
PINNED_SOURCE_SHA256: dict[str, str | None] = {"dinov2_vits14": None, "dinov2_vitb14": None}


@dataclass(frozen=True)
class EncoderSpec:
    """One registry entry."""

    name: str
    #: ``"dinov2"`` (official weights, fetched) or ``"offline"`` (made by this project).
    family: str
    description: str
    default_image_size: int
    #: Where ``worldplan encoder fetch`` downloads the weights from ("" when nothing to fetch).
    url: str = ""


_DINOV2_SPECS = {
    name: EncoderSpec(
        name=name,
        family="dinov2",
        description=f"DINOv2 ViT-{'S' if 's14' in name else 'B'}/14, official weights, "
        f"{cfg.embed_dim}-d patch tokens after the final LayerNorm",
        default_image_size=224,
        url=OFFICIAL_URLS[name],
    )
    for name, cfg in CONFIGS.items()
}

_OFFLINE_BUILDERS: dict[str, tuple[Callable[[], FrozenEncoder], str]] = {
    OFFLINE_DEFAULT: (
        offline_pyramid_v1,
        "offline default: training-free Gaussian pyramid, 64 px, 8x8 tokens x 84 dims",
    ),
    PIXEL_BASELINE: (pixel_baseline, "baseline: raw pixels, 64 px, 8x8 tokens x 192 dims"),
}
_REGISTRY: dict[str, EncoderSpec] = {
    **_DINOV2_SPECS,
    **{
        name: EncoderSpec(name=name, family="offline", description=text, default_image_size=64)
        for name, (_, text) in _OFFLINE_BUILDERS.items()
    },
}


def list_encoders() -> list[EncoderSpec]:
    """Every registered encoder, in registry order."""
    return list(_REGISTRY.values())


def _spec(name: str) -> EncoderSpec:
    if name not in _REGISTRY:
        raise KeyError(f"unknown encoder {name!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def load_encoder(
    name: str,
    weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    *,
    sha256: str | None = None,
    image_size: int | None = None,
) -> FrozenEncoder:
    """Build a frozen encoder from the registry.

    Args:
        name: Registry id (see :func:`list_encoders`).
        weights: A ``.safetensors`` file, or for DINOv2 an official ``.pth`` (converted once
            into ``cache_dir`` with the restricted loader). ``None``: the cached or shipped file.
        cache_dir: Where fetched/converted weights live (default :func:`default_cache_dir`).
        sha256: Expected sha256 of ``weights`` (of the ``.pth`` when converting one);
            otherwise the manifest beside the file is used.
        image_size: Input side in pixels (default: the spec's).

    Raises:
        KeyError: Unknown name.
        WeightsError: Missing, unverified, corrupted or mismatched weights.
    """
    spec = _spec(name)
    path = Path(weights) if weights is not None else None
    if spec.family == "offline":
        return _load_offline(name, path, sha256, image_size)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cfg = CONFIGS[name]
    layout = state_dict_layout(cfg)
    if path is not None and path.suffix in {".pth", ".pt"}:
        expected = sha256 or PINNED_SOURCE_SHA256[name]
        convert_checkpoint(
            path, cache / f"{name}.safetensors", layout, name=name, source_sha256=expected
        )
        path, sha256 = cache / f"{name}.safetensors", None
    if path is None:
        path = cache / f"{name}.safetensors"
        if not path.is_file():
            raise WeightsError(
                f"no weights for {name} in {cache}: run `worldplan encoder fetch {name}` where "
                "a network exists, or pass weights=<file .pth or .safetensors>"
            )
    state, actual = load_verified(path, sha256)
    check_layout(state, layout, str(path))
    manifest = Manifest.path_for(path)
    origin = Manifest.read(manifest).source_url if manifest.is_file() else ""
    provenance = f"official DINOv2 weights ({origin or path.name}), converted to safetensors"
    return DinoV2Encoder(
        name,
        cfg,
        state_dict=state,
        weights_sha256=actual,
        provenance=provenance,
        image_size=image_size or spec.default_image_size,
    )


def _load_offline(
    name: str, weights: Path | None, sha256: str | None, image_size: int | None
) -> FrozenEncoder:
    """Build a weight-free offline encoder; its config is fixed by its id."""
    encoder = _OFFLINE_BUILDERS[name][0]()
    if weights is not None or sha256 is not None:
        raise WeightsError(f"{name} has no weights (training-free); do not pass weights/sha256")
    if image_size is not None and image_size != encoder.image_size:
        raise ValueError(
            f"{name} is defined at image_size {encoder.image_size} (frames of any size are "
            f"resized to it); got image_size={image_size}"
        )
    return encoder


def fetch_encoder(
    name: str,
    cache_dir: str | Path | None = None,
    *,
    sha256: str | None = None,
    url: str | None = None,
    source: str | Path | None = None,
    client: httpx.Client | None = None,
    progress: bool = True,
) -> Path:
    """Download (or take ``source``, a local ``.pth``) and convert DINOv2 weights into the cache.

    Args:
        name: A ``dinov2_*`` registry id.
        cache_dir: Target directory (default :func:`default_cache_dir`).
        sha256: Expected sha256 of the official ``.pth``; unverified (recorded) when omitted.
        url: Another address for the same file (a mirror); default the official one.
        source: A local ``.pth`` to convert instead of downloading.
        client: HTTP client to use (default: a new one).
        progress: Show a progress bar while downloading.

    Returns:
        The path of the verified safetensors file.
    """
    spec = _spec(name)
    if spec.family != "dinov2":
        raise WeightsError(f"{name} ships with the repository; there is nothing to fetch")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    expected = sha256 or PINNED_SOURCE_SHA256[name]
    out = cache / f"{name}.safetensors"
    layout = state_dict_layout(CONFIGS[name])
    if source is not None:
        convert_checkpoint(Path(source), out, layout, name=name, source_sha256=expected)
        return out
    address = url or spec.url
    pth = cache / f"{name}.download.pth"
    try:
        download(address, pth, sha256=expected, client=client, progress=progress)
        convert_checkpoint(pth, out, layout, name=name, source_url=address, source_sha256=expected)
    finally:
        pth.unlink(missing_ok=True)
    return out


__all__ = [
    "OFFLINE_DEFAULT",
    "PIXEL_BASELINE",
    "EncoderInputError",
    "EncoderSpec",
    "FrozenEncoder",
    "WeightsError",
    "default_cache_dir",
    "fetch_encoder",
    "list_encoders",
    "load_encoder",
]
