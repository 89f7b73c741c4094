"""Encoder weights on disk: sha256-verified safetensors, one-time conversion of official files.

Run time loads safetensors only, after checking the file's sha256 against a
pinned value, a value the caller gives, or the manifest written next to the file
when it was made. The official DINOv2 checkpoints are torch pickles (``.pth``):
they enter the project only through :func:`convert_checkpoint`, which reads them
with ``torch.load(weights_only=True)`` (the restricted unpickler: tensors and
plain containers only, no code) and writes safetensors plus a manifest::

    <cache>/<name>.safetensors
    <cache>/<name>.json   {"name", "source_url", "source_sha256", "safetensors_sha256", ...}

Every write goes to a temporary file first and is renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import Tensor
from tqdm import tqdm

log = logging.getLogger(__name__)

#: Environment variable naming the default cache directory for fetched weights.
CACHE_ENV = "WORLDPLAN_ENCODER_CACHE"
_CHUNK = 1 << 20


class WeightsError(ValueError):
    """A weights file is missing, unverified, corrupted or has the wrong layout."""


@dataclass(frozen=True)
class Manifest:
    """Where a safetensors weights file came from and the hashes that pin it."""

    name: str
    safetensors_sha256: str
    source_url: str = ""
    source_sha256: str = ""
    note: str = ""

    @staticmethod
    def path_for(weights: Path) -> Path:
        """The manifest that belongs to ``weights`` (same stem, ``.json``)."""
        return weights.with_suffix(".json")

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Read and validate a manifest file."""
        try:
            raw = json.loads(path.read_text())
            return cls(**{k: str(raw[k]) for k in raw if k in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise WeightsError(f"unreadable weights manifest {path}: {err}") from err

    def write(self, path: Path) -> None:
        """Write atomically."""
        atomic_write_bytes(path, (json.dumps(asdict(self), indent=2) + "\n").encode())


def default_cache_dir() -> Path:
    """``$WORLDPLAN_ENCODER_CACHE`` or ``~/.cache/worldplan/encoders``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "worldplan" / "encoders"


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def _temp_beside(path: Path) -> Iterator[Path]:
    """A temporary file in ``path``'s directory, removed unless renamed away."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    with _temp_beside(path) as tmp:
        tmp.write_bytes(data)
        tmp.replace(path)


def check_layout(
    state_dict: Mapping[str, Any], layout: Mapping[str, tuple[int, ...]], source: str
) -> None:
    """Raise :class:`WeightsError` unless ``state_dict`` has exactly ``layout``'s keys/shapes."""
    missing = sorted(set(layout) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(layout))
    problems = []
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    for key in sorted(set(layout) & set(state_dict)):
        value = state_dict[key]
        if not isinstance(value, Tensor) or not value.is_floating_point():
            problems.append(f"{key} must be a float tensor, got {_kind(value)}")
        elif tuple(value.shape) != layout[key]:
            problems.append(f"{key} has shape {tuple(value.shape)}, expected {layout[key]}")
    if problems:
        raise WeightsError(f"{source} does not match the expected layout: " + "; ".join(problems))


def _few(keys: list[str], n: int = 5) -> str:
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _kind(value: object) -> str:
    if isinstance(value, Tensor):
        return f"{value.dtype} tensor"
    return type(value).__name__


def load_verified(path: Path, sha256: str | None = None) -> tuple[dict[str, Tensor], str]:
    """Load a safetensors file after checking its sha256; return (tensors, sha256).

    The expected hash is ``sha256`` when given, else the one in the manifest next
    to the file. The bytes that are hashed are the bytes that are parsed.
    """
    if path.suffix != ".safetensors":
        raise WeightsError(
            f"{path}: run time loads .safetensors only; convert a .pth checkpoint first "
            "(`worldplan encoder fetch NAME --from FILE.pth`)"
        )
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    expected = sha256
    if expected is None:
        manifest = Manifest.path_for(path)
        if not manifest.is_file():
            raise WeightsError(
                f"{path} has no manifest {manifest.name} and no sha256 was given: refusing "
                "unverified weights (pass sha256=..., or fetch/convert them to write a manifest)"
            )
        expected = Manifest.read(manifest).safetensors_sha256
    data = path.read_bytes()
    actual = sha256_bytes(data)
    if actual != expected.lower():
        raise WeightsError(
            f"{path}: sha256 {actual} does not match the expected {expected}; the file is "
            "corrupted or was replaced: fetch or convert it again"
        )
    try:
        tensors = load_safetensors_bytes(data)
    except Exception as err:  # safetensors raises its own error types
        raise WeightsError(f"{path}: not a valid safetensors file: {err}") from err
    return tensors, actual


def save_safetensors(
    path: Path, tensors: Mapping[str, Tensor], manifest: Manifest | None = None
) -> str:
    """Write tensors (contiguous, CPU) atomically; with a manifest, write it too. Return sha256."""
    data = save_safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    sha = sha256_bytes(data)
    atomic_write_bytes(path, data)
    if manifest is not None:
        Manifest(**{**asdict(manifest), "safetensors_sha256": sha}).write(Manifest.path_for(path))
    return sha


def read_checkpoint(pth: Path) -> dict[str, Tensor]:
    """Read a torch checkpoint with the restricted unpickler (tensors and containers only)."""
    try:
        obj = torch.load(pth, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for anything but plain tensors, OSError, ...
        raise WeightsError(
            f"{pth}: not a plain tensor checkpoint (read with weights_only=True): {err}"
        ) from err
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) for k in obj):
        raise WeightsError(f"{pth}: expected a state dict of named tensors, got {_kind(obj)}")
    bad = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if bad:
        raise WeightsError(f"{pth}: entries that are not tensors: {_few(sorted(bad))}")
    return dict(obj)


def convert_checkpoint(
    pth: Path,
    out: Path,
    layout: Mapping[str, tuple[int, ...]],
    *,
    name: str,
    source_url: str = "",
    source_sha256: str | None = None,
) -> Manifest:
    """Convert a ``.pth`` state dict once into safetensors + manifest, checking it on the way.

    Args:
        pth: The checkpoint (e.g. the official ``dinov2_vits14_pretrain.pth``).
        out: Target ``.safetensors`` path; the manifest goes beside it.
        layout: Expected keys and shapes; anything else is refused before writing.
        name: Registry id recorded in the manifest.
        source_url: Where the checkpoint was downloaded from ("" for a local file).
        source_sha256: Expected sha256 of ``pth``; ``None`` records it unverified
            (trust on first use).

    Returns:
        The manifest written.
    """
    actual = sha256_file(pth)
    if source_sha256 is not None and actual != source_sha256.lower():
        raise WeightsError(
            f"{pth}: sha256 {actual} does not match the expected {source_sha256}; "
            "the download is corrupted or is not the file you meant"
        )
    state = read_checkpoint(pth)
    check_layout(state, layout, str(pth))
    note = "source sha256 verified" if source_sha256 else "source sha256 recorded, not verified"
    manifest = Manifest(
        name=name, safetensors_sha256="", source_url=source_url, source_sha256=actual, note=note
    )
    sha = save_safetensors(out, {k: v.float() for k, v in state.items()}, manifest)
    log.info("converted %s -> %s (sha256 %s)", pth, out, sha)
    return Manifest.read(Manifest.path_for(out))


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    client: httpx.Client | None = None,
    progress: bool = True,
) -> str:
    """Stream ``url`` to ``dest`` atomically, with a progress bar; return the file's sha256.

    A mismatch with ``sha256`` (when given) leaves nothing at ``dest``.
    """
    own = client is None
    http = httpx.Client(follow_redirects=True, timeout=60.0) if client is None else client
    h = hashlib.sha256()
    try:
        with _temp_beside(dest) as tmp, http.stream("GET", url) as resp:
            if resp.status_code != httpx.codes.OK:
                raise WeightsError(f"download of {url} failed: HTTP {resp.status_code}")
            total = int(resp.headers.get("content-length", 0)) or None
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress)
            with tmp.open("wb") as f, bar:
                for chunk in resp.iter_bytes(_CHUNK):
                    f.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
            actual = h.hexdigest()
            if sha256 is not None and actual != sha256.lower():
                raise WeightsError(f"{url}: sha256 {actual} does not match the expected {sha256}")
            tmp.replace(dest)
    except httpx.HTTPError as err:
        raise WeightsError(f"download of {url} failed: {err} (is there a network?)") from err
    finally:
        if own:
            http.close()
    return actual
