"""Drawing of the maze worlds straight at the requested image size.

The walls are static, so each (layout, size) background is drawn once with exact
area coverage (box-filter anti-aliasing, seam-free where wall rectangles meet) and
copied per frame. The U-maze agent is an anti-aliased, sub-pixel OpenCV disc with
D4RL's colours and its marker radius of 0.2 units (the collision radius is 0.1); the
two-room agent is DINO-WM's red Gaussian dot (std 1.7 px of the 65 px world) on white,
which leaves black walls black.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sims.base import fill_circle
from sims.maze_layouts import MazeLayout

UMAZE_FLOOR = (51, 77, 102)  # D4RL ground (0.2, 0.3, 0.4)
UMAZE_WALL = (179, 128, 77)  # D4RL wall material (0.7, 0.5, 0.3)
UMAZE_AGENT = (77, 153, 77)  # D4RL particle site (0.3, 0.6, 0.3)
UMAZE_AGENT_DRAW_RADIUS = 0.2
TWOROOM_FLOOR = (255, 255, 255)
TWOROOM_WALL = (0, 0, 0)
TWOROOM_DOT_STD = 1.7


def _coverage_1d(lo: float, hi: float, size: int) -> NDArray[np.float64]:
    """Fraction of each pixel ``[i - 0.5, i + 0.5]`` covered by the interval ``[lo, hi]``."""
    centres = np.arange(size, dtype=np.float64)
    left = np.maximum(centres - 0.5, lo)
    right = np.minimum(centres + 0.5, hi)
    out: NDArray[np.float64] = np.clip(right - left, 0.0, 1.0)
    return out


def wall_coverage(layout: MazeLayout, size: int) -> NDArray[np.float64]:
    """Fraction ``(size, size)`` of each pixel covered by wall (rectangles are disjoint)."""
    cover = np.zeros((size, size), dtype=np.float64)
    for x0, y0, x1, y1 in layout.walls:
        corners = layout.to_pixels(np.array([[x0, y0], [x1, y1]]), size)
        u0, u1 = sorted(corners[:, 0])
        v0, v1 = sorted(corners[:, 1])
        cover += np.outer(_coverage_1d(v0, v1, size), _coverage_1d(u0, u1, size))
    out: NDArray[np.float64] = np.clip(cover, 0.0, 1.0)
    return out


def background(layout: MazeLayout, size: int) -> NDArray[np.uint8]:
    """The floor and walls of ``layout`` as an ``(size, size, 3)`` uint8 image."""
    floor, wall = (
        (UMAZE_FLOOR, UMAZE_WALL) if layout.name == "umaze" else (TWOROOM_FLOOR, TWOROOM_WALL)
    )
    cover = wall_coverage(layout, size)[..., None]
    img = (1.0 - cover) * np.array(floor, dtype=np.float64) + cover * np.array(wall, np.float64)
    out: NDArray[np.uint8] = np.round(img).astype(np.uint8)
    return out


def draw_agent(img: NDArray[np.uint8], layout: MazeLayout, position: NDArray[np.float64]) -> None:
    """Draw the agent at ``position`` (layout units) onto ``img`` in place."""
    size = img.shape[0]
    centre = layout.to_pixels(position, size)
    scale = layout.pixels_per_unit(size)
    if layout.name == "umaze":
        fill_circle(img, centre, UMAZE_AGENT_DRAW_RADIUS * scale, UMAZE_AGENT)
    else:
        _gaussian_dot(img, centre, TWOROOM_DOT_STD * scale)


def _gaussian_dot(img: NDArray[np.uint8], centre: NDArray[np.float64], std: float) -> None:
    """Tint ``img`` red with ``exp(-d^2 / 2 std^2)`` around ``centre`` (green, blue scaled down)."""
    size = img.shape[0]
    reach = int(np.ceil(4.0 * std))
    cu, cv = (round(float(c)) for c in centre)
    u0, u1 = max(cu - reach, 0), min(cu + reach + 1, size)
    v0, v1 = max(cv - reach, 0), min(cv + reach + 1, size)
    if u0 >= u1 or v0 >= v1:
        return
    du = np.arange(u0, u1, dtype=np.float64) - centre[0]
    dv = np.arange(v0, v1, dtype=np.float64) - centre[1]
    inv = -0.5 / (std * std)
    keep = 1.0 - np.outer(np.exp(dv * dv * inv), np.exp(du * du * inv)).astype(np.float32)  # (V, U)
    patch = img[v0:v1, u0:u1, 1:]  # (V, U, 2) green and blue
    img[v0:v1, u0:u1, 1:] = (patch * keep[..., None] + np.float32(0.5)).astype(np.uint8)
