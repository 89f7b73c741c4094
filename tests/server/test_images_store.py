from __future__ import annotations

import base64
import io
import pickle

import numpy as np
import pytest
from PIL import Image

from server.images import ImageError, decode_base64_image, decode_image, encode_png
from server.store import BoundedStore


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_png_round_trip_is_exact() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(encode_png(arr), 64), arr)


def test_npy_and_base64() -> None:
    arr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    buf = io.BytesIO()
    np.save(buf, arr)
    np.testing.assert_array_equal(decode_image(buf.getvalue(), 64), arr)
    text = base64.b64encode(_png(arr)).decode()
    np.testing.assert_array_equal(decode_base64_image(text, 64), arr)
    np.testing.assert_array_equal(decode_base64_image("data:image/png;base64," + text, 64), arr)


def test_grey_png_is_converted_to_rgb() -> None:
    grey = np.full((5, 5), 7, dtype=np.uint8)
    out = decode_image(_png(grey), 64)  # type: ignore[arg-type]
    assert out.shape == (5, 5, 3)
    assert (out == 7).all()


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"", "empty"),
        (b"GIF89a....", "PNG, JPEG"),
        (b"\x89PNG\r\n\x1a\n garbage", "could not be decoded"),
    ],
)
def test_bad_bytes_are_refused(payload: bytes, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        decode_image(payload, 64)


def test_pickled_npy_is_refused() -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ImageError, match="pickle"):
        decode_image(buf.getvalue(), 64)
    # A raw pickle stream is not even recognised as an image.
    with pytest.raises(ImageError, match="PNG, JPEG"):
        decode_image(pickle.dumps(np.zeros((2, 2, 3), np.uint8)), 64)


@pytest.mark.parametrize(
    "arr",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8)],
)
def test_wrong_array_shapes_or_dtypes(arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, arr)
    with pytest.raises(ImageError, match="HxWx3 uint8"):
        decode_image(buf.getvalue(), 64)


def test_too_large_is_refused() -> None:
    with pytest.raises(ImageError, match="larger than 16"):
        decode_image(_png(np.zeros((8, 32, 3), np.uint8)), 16)


def test_bad_base64() -> None:
    with pytest.raises(ImageError, match="base64"):
        decode_base64_image("***", 64)


def test_store_evicts_oldest_first() -> None:
    store: BoundedStore[int] = BoundedStore(2)
    store.put("a", 1)
    store.put("b", 2)
    store.put("c", 3)
    assert len(store) == 2
    assert store.get("a") is None
    assert store.get("b") == 2
    assert store.get("c") == 3
    with pytest.raises(ValueError, match="capacity"):
        BoundedStore(0)
