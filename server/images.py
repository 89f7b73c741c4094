"""Decoding client images safely: PNG/JPEG bytes, base64 text, or ``.npy`` without pickle.

Every decoder returns a C-contiguous ``uint8`` array (H, W, 3) in RGB order or
raises :class:`ImageError` with a message a client can act on.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

_NPY_MAGIC = b"\x93NUMPY"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


class ImageError(ValueError):
    """A client image that cannot be used; the message says why."""


def decode_image(data: bytes, max_side: int) -> NDArray[np.uint8]:
    """Decode PNG, JPEG or ``.npy`` bytes into an RGB uint8 array (H, W, 3).

    Args:
        data: The raw bytes of the file.
        max_side: Largest accepted width or height in pixels.

    Raises:
        ImageError: Unknown format, corrupt data, wrong shape or dtype, or too large.
    """
    if not data:
        raise ImageError("image is empty")
    if data.startswith(_NPY_MAGIC):
        arr = _decode_npy(data)
    elif data.startswith((_PNG_MAGIC, _JPEG_MAGIC)):
        arr = _decode_picture(data, max_side)
    else:
        raise ImageError("image must be PNG, JPEG or a .npy array (uint8 HxWx3)")
    return _check_array(arr, max_side)


def decode_base64_image(text: str, max_side: int) -> NDArray[np.uint8]:
    """Decode a base64 string (optionally a ``data:`` URL) holding PNG, JPEG or ``.npy``."""
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"image is not valid base64: {exc}") from exc
    return decode_image(raw, max_side)


def encode_png(image: NDArray[np.uint8]) -> bytes:
    """Encode an RGB uint8 array (H, W, 3) as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(_check_array(image, max_side=1 << 16)).save(buf, format="PNG")
    return buf.getvalue()


def _decode_npy(data: bytes) -> NDArray[np.uint8]:
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ImageError(f"image .npy is not a plain array (pickles are refused): {exc}") from exc
    if not isinstance(arr, np.ndarray):
        raise ImageError("image .npy must hold one array")
    return arr


def _decode_picture(data: bytes, max_side: int) -> NDArray[np.uint8]:
    try:
        with Image.open(io.BytesIO(data)) as img:
            if max(img.size) > max_side:
                raise ImageError(
                    f"image is {img.size[0]}x{img.size[1]}, larger than {max_side} px a side"
                )
            rgb = img.convert("RGB")
            rgb.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ImageError(f"image could not be decoded: {exc}") from exc
    return np.asarray(rgb, dtype=np.uint8)


def _check_array(arr: NDArray[np.generic], max_side: int) -> NDArray[np.uint8]:
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(f"image must be HxWx3 uint8, got {arr.shape} {arr.dtype}")
    if min(arr.shape[:2]) < 1 or max(arr.shape[:2]) > max_side:
        raise ImageError(f"image is {arr.shape[1]}x{arr.shape[0]}, must be 1..{max_side} px a side")
    return np.ascontiguousarray(arr)
