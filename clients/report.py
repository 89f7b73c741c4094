"""Evaluation outputs, all written atomically (temporary file, then rename).

* :func:`write_json`: the results file.
* :func:`budget_plot`: success rate (with its 95% interval) against planning budget,
  baselines as dashed lines, drawn with OpenCV.
* :func:`write_video`: an episode as a GIF (Pillow) or MP4 (OpenCV), each frame
  the observation beside the goal image.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from clients.stats import Summary

_W, _H = 720, 440
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 170, 40, 60
_PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (140, 86, 75)]


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON (NaN written as null)."""
    text = json.dumps(_clean(data), indent=2)
    atomic_write(path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def _text(img: NDArray[np.uint8], text: str, org: tuple[int, int], scale: float = 0.45) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (30, 30, 30), 1, cv2.LINE_AA)


def _axes(img: NDArray[np.uint8], budgets: Sequence[str], title: str) -> list[int]:
    """Draw axes and ticks; return the x pixel of each budget (evenly spaced)."""
    x0, x1, y0, y1 = _LEFT, _W - _RIGHT, _H - _BOTTOM, _TOP
    cv2.line(img, (x0, y0), (x1, y0), (0, 0, 0), 1, cv2.LINE_AA)
    cv2.line(img, (x0, y0), (x0, y1), (0, 0, 0), 1, cv2.LINE_AA)
    for i in range(6):
        y = _y(i / 5)
        cv2.line(img, (x0 - 4, y), (x1, y), (225, 225, 225) if i else (0, 0, 0), 1)
        _text(img, f"{i / 5:.1f}", (x0 - 40, y + 5))
    n = len(budgets)
    xs = [x0 + (x1 - x0) * (i + 1) // (n + 1) for i in range(n)]
    for x, b in zip(xs, budgets, strict=True):
        cv2.line(img, (x, y0), (x, y0 + 5), (0, 0, 0), 1)
        _text(img, b, (x - 4 * len(b), y0 + 22))
    _text(img, "planning budget (optimiser iterations)", (x0 + 60, _H - 15), 0.5)
    _text(img, "success", (8, _TOP - 12), 0.5)
    _text(img, title, (x0 + 10, 24), 0.55)
    return xs


def _y(rate: float) -> int:
    return round(_H - _BOTTOM - rate * (_H - _BOTTOM - _TOP))


def budget_plot(
    path: Path,
    budgets: Sequence[str],
    planned: Sequence[Summary],
    baselines: Sequence[Summary],
    title: str,
) -> None:
    """Success rate against budget with 95% intervals; baselines as dashed lines; PNG."""
    if len(budgets) != len(planned) or not budgets:
        raise ValueError(f"need one summary per budget, got {len(budgets)} and {len(planned)}")
    img = np.full((_H, _W, 3), 255, dtype=np.uint8)
    xs = _axes(img, budgets, title)
    color = _PALETTE[0]
    points = [(x, _y(s.success_rate)) for x, s in zip(xs, planned, strict=True)]
    for x, s in zip(xs, planned, strict=True):
        cv2.line(img, (x, _y(s.ci_low)), (x, _y(s.ci_high)), color, 1, cv2.LINE_AA)
        for r in (s.ci_low, s.ci_high):
            cv2.line(img, (x - 5, _y(r)), (x + 5, _y(r)), color, 1, cv2.LINE_AA)
    for a, b in itertools.pairwise(points):
        cv2.line(img, a, b, color, 2, cv2.LINE_AA)
    for p in points:
        cv2.circle(img, p, 4, color, -1, cv2.LINE_AA)
    legend = [(planned[0].controller.split("@")[0], color)]
    for i, base in enumerate(baselines):
        c = _PALETTE[(i + 1) % len(_PALETTE)]
        y = _y(base.success_rate)
        for x in range(_LEFT, _W - _RIGHT, 12):
            cv2.line(img, (x, y), (min(x + 6, _W - _RIGHT), y), c, 2, cv2.LINE_AA)
        legend.append((base.controller, c))
    for i, (label, c) in enumerate(legend):
        y = _TOP + 20 + 22 * i
        cv2.line(img, (_W - _RIGHT + 15, y - 4), (_W - _RIGHT + 40, y - 4), c, 2, cv2.LINE_AA)
        _text(img, label, (_W - _RIGHT + 48, y))
    ok, png = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV could not encode the plot as PNG")
    atomic_write(path, lambda tmp: tmp.write_bytes(png.tobytes()))


def _side_by_side(
    frames: Sequence[NDArray[np.uint8]], goal: NDArray[np.uint8]
) -> list[NDArray[np.uint8]]:
    if not frames:
        raise ValueError("an episode video needs at least one frame")
    h = frames[0].shape[0]
    goal_img = goal if goal.shape[0] == h else cv2.resize(goal, (h, h))
    gap = np.full((h, 4, 3), 255, dtype=np.uint8)
    return [np.concatenate([f, gap, goal_img], axis=1) for f in frames]


def write_video(
    path: Path, frames: Sequence[NDArray[np.uint8]], goal: NDArray[np.uint8], fps: int = 10
) -> None:
    """Write an episode (observation | goal per frame) as ``.gif`` or ``.mp4``."""
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    pictures = _side_by_side(frames, goal)
    if path.suffix == ".gif":
        atomic_write(path, lambda tmp: _gif(tmp, pictures, fps))
    elif path.suffix == ".mp4":
        atomic_write(path, lambda tmp: _mp4(tmp, pictures, fps))
    else:
        raise ValueError(f"video must end in .gif or .mp4, got {path.name!r}")


def _gif(tmp: Path, pictures: Sequence[NDArray[np.uint8]], fps: int) -> None:
    images = [Image.fromarray(p) for p in pictures]
    images[0].save(
        tmp, format="GIF", save_all=True, append_images=images[1:], duration=1000 // fps, loop=0
    )


def _mp4(tmp: Path, pictures: Sequence[NDArray[np.uint8]], fps: int) -> None:
    h, w = pictures[0].shape[:2]
    fourcc = cv2.VideoWriter.fourcc(*"mp4v")
    writer = cv2.VideoWriter(str(tmp), fourcc, float(fps), (w, h))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write MP4 here; use --video-format gif")
    try:
        for p in pictures:
            writer.write(cv2.cvtColor(p, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
