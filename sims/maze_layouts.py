"""Wall geometry of the maze worlds: the D4RL U-maze and the two-room world with a door.

Every layout is a set of disjoint axis-aligned wall rectangles. The same rectangles
drive the physics (pymunk shapes), the rendering and the free-space queries that
guardrails and tests use, so the three can never disagree.

Coordinates:

* ``umaze``: maze units. The grid string is read as D4RL does: the row index of the
  string is ``x`` and the column index is ``y``; free cells are unit squares centred
  on integer coordinates (D4RL's ``qpos`` is this frame shifted by -0.2). The image
  shows ``x`` to the right and ``y`` upwards (DINO-WM's top-down camera).
* ``tworoom``: pixels of DINO-WM's 65 x 65 world, ``x`` to the right and ``y``
  downwards (image rows); pixel ``i`` is centred on coordinate ``i``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

LayoutName = Literal["umaze", "tworoom"]
LAYOUTS: tuple[LayoutName, ...] = ("umaze", "tworoom")

#: D4RL's U-maze, one string per row (row index = x, column index = y).
UMAZE_SPEC: tuple[str, ...] = ("#####", "#GOO#", "###O#", "#OOO#", "#####")
UMAZE_AGENT_RADIUS = 0.1
UMAZE_SUCCESS_DISTANCE = 0.5

TWOROOM_SIZE = 65
TWOROOM_BORDER = 4.0  # inner faces of the border walls at 4 and 60 (DINO-WM border_wall_loc 5)
TWOROOM_WALL_HALF_WIDTH = 3.0  # the middle wall covers x in [wall_x - 3, wall_x + 3]
TWOROOM_DOOR_HALF_HEIGHT = 4.0  # the door is open where |y - door_y| <= 4
TWOROOM_WALL_X_RANGE = (20, 44)
TWOROOM_DOOR_Y_RANGE = (10, 54)
TWOROOM_DEFAULT_WALL_X = 32.0
TWOROOM_SUCCESS_DISTANCE = 4.5


@dataclass(frozen=True)
class MazeLayout:
    """One wall layout.

    Attributes:
        name: ``"umaze"`` or ``"tworoom"``.
        walls: Disjoint wall rectangles ``(K, 4)`` as ``x0, y0, x1, y1``.
        extent: The rendered window ``x0, y0, x1, y1``; everything outside is wall.
        y_up: Whether ``y`` points up in the image (U-maze) or down (two-room).
        agent_radius: Collision radius of the agent in layout units.
        success_distance: Success when the agent is closer than this to the goal.
        wall_x: Centre of the two-room middle wall (0 for the U-maze).
        door_y: Centre of the two-room door (0 for the U-maze).
    """

    name: LayoutName
    walls: NDArray[np.float64]
    extent: tuple[float, float, float, float]
    y_up: bool
    agent_radius: float
    success_distance: float
    wall_x: float = 0.0
    door_y: float = 0.0

    @property
    def layout_id(self) -> int:
        """Index of the layout in :data:`LAYOUTS` (stored in the state vector)."""
        return LAYOUTS.index(self.name)

    def clearance(self, x: ArrayLike, y: ArrayLike) -> NDArray[np.float64]:
        """Distance from points to the nearest wall (0 inside a wall or outside the extent)."""
        px = np.asarray(x, dtype=np.float64)[..., None]
        py = np.asarray(y, dtype=np.float64)[..., None]
        x0, y0, x1, y1 = (self.walls[:, i] for i in range(4))
        dx = np.maximum(np.maximum(x0 - px, px - x1), 0.0)
        dy = np.maximum(np.maximum(y0 - py, py - y1), 0.0)
        dist: NDArray[np.float64] = np.hypot(dx, dy).min(axis=-1)
        ex0, ey0, ex1, ey1 = self.extent
        inside = (px[..., 0] > ex0) & (px[..., 0] < ex1) & (py[..., 0] > ey0) & (py[..., 0] < ey1)
        return np.where(inside, dist, 0.0)

    def free(self, x: ArrayLike, y: ArrayLike, radius: float = 0.0) -> NDArray[np.bool_]:
        """Whether a disc of ``radius`` centred on ``(x, y)`` touches no wall.

        Works on scalars or broadcastable arrays; a wall's boundary counts as wall.
        """
        out: NDArray[np.bool_] = self.clearance(x, y) > radius
        return out

    def is_free(self, x: float, y: float, radius: float = 0.0) -> bool:
        """Scalar form of :meth:`free` (plain Python: the per-step hot path)."""
        ex0, ey0, ex1, ey1 = self.extent
        if not (ex0 < x < ex1 and ey0 < y < ey1):
            return False
        nearest = min(
            math.hypot(max(x0 - x, x - x1, 0.0), max(y0 - y, y - y1, 0.0))
            for x0, y0, x1, y1 in self._wall_tuples
        )
        return nearest > radius

    @cached_property
    def _wall_tuples(self) -> tuple[tuple[float, float, float, float], ...]:
        return tuple((float(a), float(b), float(c), float(d)) for a, b, c, d in self.walls)

    def to_pixels(self, points: ArrayLike, size: int) -> NDArray[np.float64]:
        """Map layout coordinates ``(..., 2)`` to float image coordinates (pixel centres: ints)."""
        p = np.asarray(points, dtype=np.float64)
        ex0, ey0, ex1, ey1 = self.extent
        u = (p[..., 0] - ex0) * size / (ex1 - ex0) - 0.5
        v_from = ey1 - p[..., 1] if self.y_up else p[..., 1] - ey0
        v = v_from * size / (ey1 - ey0) - 0.5
        return np.stack([u, v], axis=-1)

    def pixels_per_unit(self, size: int) -> float:
        """Image pixels per layout unit at image size ``size``."""
        return size / (self.extent[2] - self.extent[0])


def umaze_layout() -> MazeLayout:
    """The D4RL U-maze: one unit square of wall per ``#`` of :data:`UMAZE_SPEC`."""
    rects = [
        (i - 0.5, j - 0.5, i + 0.5, j + 0.5)
        for i, row in enumerate(UMAZE_SPEC)
        for j, tile in enumerate(row)
        if tile == "#"
    ]
    n = len(UMAZE_SPEC)
    return MazeLayout(
        name="umaze",
        walls=np.array(rects, dtype=np.float64),
        extent=(-0.5, -0.5, n - 0.5, n - 0.5),
        y_up=True,
        agent_radius=UMAZE_AGENT_RADIUS,
        success_distance=UMAZE_SUCCESS_DISTANCE,
    )


def tworoom_layout(wall_x: float, door_y: float) -> MazeLayout:
    """The two-room world: border walls, a middle wall at ``wall_x`` with a door at ``door_y``.

    Raises:
        ValueError: If ``wall_x`` or ``door_y`` lies outside DINO-WM's ranges.
    """
    lo, hi = TWOROOM_WALL_X_RANGE
    if not (np.isfinite(wall_x) and lo <= wall_x <= hi):
        raise ValueError(f"wall_x must be in [{lo}, {hi}], got {wall_x}")
    lo, hi = TWOROOM_DOOR_Y_RANGE
    if not (np.isfinite(door_y) and lo <= door_y <= hi):
        raise ValueError(f"door_y must be in [{lo}, {hi}], got {door_y}")
    e0, e1 = -0.5, TWOROOM_SIZE - 0.5
    b0, b1 = TWOROOM_BORDER, TWOROOM_SIZE - 1 - TWOROOM_BORDER
    w0, w1 = wall_x - TWOROOM_WALL_HALF_WIDTH, wall_x + TWOROOM_WALL_HALF_WIDTH
    d0, d1 = door_y - TWOROOM_DOOR_HALF_HEIGHT, door_y + TWOROOM_DOOR_HALF_HEIGHT
    rects = [
        (e0, e0, b0, e1),  # left border, full height
        (b1, e0, e1, e1),  # right border, full height
        (b0, e0, b1, b0),  # top border, between the side borders
        (b0, b1, b1, e1),  # bottom border
        (w0, b0, w1, d0),  # middle wall above the door
        (w0, d1, w1, b1),  # middle wall below the door
    ]
    return MazeLayout(
        name="tworoom",
        walls=np.array(rects, dtype=np.float64),
        extent=(e0, e0, e1, e1),
        y_up=False,
        agent_radius=0.0,
        success_distance=TWOROOM_SUCCESS_DISTANCE,
        wall_x=float(wall_x),
        door_y=float(door_y),
    )


def make_layout(
    name: str, wall_x: float = TWOROOM_DEFAULT_WALL_X, door_y: float = 32.0
) -> MazeLayout:
    """Build the layout called ``name`` (the two-room parameters are ignored for the U-maze)."""
    if name == "umaze":
        return umaze_layout()
    if name == "tworoom":
        return tworoom_layout(wall_x, door_y)
    raise ValueError(f"layout must be one of {LAYOUTS}, got {name!r}")


def umaze_free_cells() -> list[tuple[int, int]]:
    """The free ``(x, y)`` cells of the U-maze, sorted."""
    return sorted(
        (i, j) for i, row in enumerate(UMAZE_SPEC) for j, tile in enumerate(row) if tile != "#"
    )


def umaze_path(start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
    """Shortest 4-connected path of free cells from ``start`` to ``goal`` (both included).

    Raises:
        ValueError: If either cell is not free.
    """
    cells = set(umaze_free_cells())
    for name, cell in (("start", start), ("goal", goal)):
        if cell not in cells:
            raise ValueError(f"{name} cell {cell} is not a free U-maze cell; free: {sorted(cells)}")
    parent: dict[tuple[int, int], tuple[int, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            break
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nxt = (cell[0] + dx, cell[1] + dy)
            if nxt in cells and nxt not in parent:
                parent[nxt] = cell
                queue.append(nxt)
    path = [goal]
    while (prev := parent[path[-1]]) is not None:
        path.append(prev)
    return path[::-1]
