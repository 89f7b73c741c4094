"""Encoding images for the service: uint8 (H, W, 3) arrays to PNG or ``.npy`` bytes."""

from __future__ import annotations

import base64
import io
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image

ImageFormat = Literal["png", "npy"]
ImageInput = NDArray[Any] | bytes


def check_image(image: NDArray[Any], name: str = "image") -> NDArray[np.uint8]:
    """Return ``image`` as a C-contiguous uint8 (H, W, 3) array, or raise ``ValueError``."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"{name} must be an HxWx3 uint8 RGB array, got {arr.shape} {arr.dtype}")
    return np.ascontiguousarray(arr)


def encode_png(image: NDArray[Any]) -> bytes:
    """PNG bytes of an RGB uint8 (H, W, 3) array (lossless)."""
    buf = io.BytesIO()
    Image.fromarray(check_image(image)).save(buf, format="PNG")
    return buf.getvalue()


def encode_npy(image: NDArray[Any]) -> bytes:
    """``.npy`` bytes of an RGB uint8 (H, W, 3) array (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, check_image(image), allow_pickle=False)
    return buf.getvalue()


def image_bytes(image: ImageInput, fmt: ImageFormat, name: str = "image") -> bytes:
    """Bytes to upload: an array encoded as ``fmt``, or already encoded bytes as given."""
    if isinstance(image, bytes | bytearray):
        if not image:
            raise ValueError(f"{name} is empty")
        return bytes(image)
    check_image(image, name)
    if fmt == "png":
        return encode_png(image)
    if fmt == "npy":
        return encode_npy(image)
    raise ValueError(f"image format must be 'png' or 'npy', got {fmt!r}")


def to_base64(data: bytes) -> str:
    """Standard base64 text of ``data``."""
    return base64.b64encode(data).decode("ascii")
