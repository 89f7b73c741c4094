"""``worldplan/Maze-v0``: a point agent among walls, in DINO-WM's two maze worlds.

Layouts (``layout=`` at construction, or ``reset(options={"layout": ...})`` for one
episode; the spaces are identical in both):

* ``"umaze"``: D4RL's PointMaze U-maze ``#####/#GOO#/###O#/#OOO#/#####`` in maze units
  (row index = ``x``, column index = ``y``, free cells centred on integers; the image
  shows ``x`` right and ``y`` up). A disc of radius 0.1 driven by a force
  ``100 * action`` (physics in :mod:`sims.maze_physics`); 0.05 s per step. Success:
  closer than 0.5 units to the goal.
* ``"tworoom"``: DINO-WM's wall world, 65 x 65 px (``x`` right, ``y`` down), border
  walls at 4 and 60, a middle wall ``|x - wall_x| <= 3`` with a door ``|y - door_y| <= 4``;
  the dot moves ``2 * action`` px per step and stops 0.5 px before a wall. Success:
  closer than 4.5 px. A ``door_y`` (or ``wall_x``) that is ``None`` in both the
  constructor and the reset options is drawn from the reset seed.

Observation: ``pixels`` uint8 ``(S, S, 3)`` and ``proprio`` float32 ``(4,)``: position and
velocity in the layout's units (U-maze: units and units/s; two-room: px and px per step,
i.e. the last displacement). Action: ``Box(-1, 1, (2,))``; a wrong shape or a non-finite
value raises ``ValueError`` and leaves the state untouched, out-of-box values are clipped
and reported in ``info["action_clipped"]``. Reward: 1 on success, else 0; ``terminated``
is False unless ``terminate_on_success=True`` (episodes end by the time limit; success is
``info["is_success"]``, computed by :meth:`MazeEnv.evaluate_state`).

State: float64 ``(7,)`` named by :attr:`MazeEnv.state_labels`: position, velocity,
layout index (0 U-maze, 1 two-room), ``wall_x`` and ``door_y`` (0 for the U-maze).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from numpy.typing import ArrayLike, NDArray

from sims.base import WorldEnv, check_action
from sims.maze_layouts import (
    LAYOUTS,
    TWOROOM_BORDER,
    TWOROOM_DEFAULT_WALL_X,
    TWOROOM_DOOR_Y_RANGE,
    TWOROOM_SIZE,
    TWOROOM_SUCCESS_DISTANCE,
    TWOROOM_WALL_HALF_WIDTH,
    TWOROOM_WALL_X_RANGE,
    UMAZE_SUCCESS_DISTANCE,
    LayoutName,
    MazeLayout,
    make_layout,
)
from sims.maze_physics import DotPhysics, PointMassPhysics
from sims.maze_render import background, draw_agent

# A U-maze state read from the physics may overlap a wall by up to ~0.015 units (contact
# resolution); set_state accepts that much so that every recorded state round-trips.
UMAZE_OVERLAP_TOLERANCE = 0.02
# Sampled starts and goals keep this clearance from walls, as DINO-WM samples them:
# 0.2 units beyond the radius in the U-maze, 2 dot std (3.4 px) plus the border in the
# two-room world.
UMAZE_SAMPLE_CLEARANCE = 0.2
UMAZE_MIN_START_GOAL = 1.0
UMAZE_START_SPEED_STD = 0.1  # D4RL's reset velocity noise
TWOROOM_SAMPLE_PADDING = 3.4
# Positions (at most 64.5 px) and velocities (|v| <= MAX_STATE_SPEED) of both layouts fit.
PROPRIO_BOUND = 100.0
MAX_STATE_SPEED = 10.0
SUCCESS_DISTANCE = {"umaze": UMAZE_SUCCESS_DISTANCE, "tworoom": TWOROOM_SUCCESS_DISTANCE}
OPTION_KEYS = frozenset({"layout", "wall_x", "door_y", "state", "goal_state"})

Obs = dict[str, NDArray[Any]]


class MazeEnv(WorldEnv):
    """Point agent in the U-maze or the two-room world (see the module docstring)."""

    state_labels = ("agent_x", "agent_y", "agent_vx", "agent_vy", "layout", "wall_x", "door_y")
    metric_name = "distance"

    def __init__(
        self,
        render_mode: str | None = "rgb_array",
        image_size: int = 224,
        layout: str = "umaze",
        *,
        wall_x: float | None = TWOROOM_DEFAULT_WALL_X,
        door_y: float | None = None,
        terminate_on_success: bool = False,
        render_pixels: bool = True,
    ) -> None:
        """Build the env.

        Args:
            render_mode: ``"rgb_array"`` (the only mode) or None.
            image_size: Side of the square rendered image in pixels (>= 16).
            layout: ``"umaze"`` or ``"tworoom"``.
            wall_x: Two-room middle wall centre in [20, 44]; None draws it per reset.
            door_y: Two-room door centre in [10, 54]; None draws it per reset.
            terminate_on_success: End the episode (``terminated``) on success; off by
                default so that evaluation cannot stop on the simulator's success oracle.
            render_pixels: If False, ``pixels`` is a black frame (fast state-only runs);
                :meth:`render` still draws.
        """
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        if not isinstance(image_size, int) or image_size < 16:
            raise ValueError(f"image_size must be an int >= 16, got {image_size!r}")
        _check_layout_name(layout)
        self.render_mode = render_mode
        self.image_size = image_size
        self.terminate_on_success = bool(terminate_on_success)
        self.render_pixels = bool(render_pixels)
        self._default_params: dict[str, Any] = {
            "layout": layout,
            "wall_x": wall_x,
            "door_y": door_y,
        }
        self._action_box = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = self._action_box
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                "pixels": spaces.Box(0, 255, (image_size, image_size, 3), dtype=np.uint8),
                "proprio": spaces.Box(-PROPRIO_BOUND, PROPRIO_BOUND, (4,), dtype=np.float32),
            }
        )
        first = make_layout(layout, _or(wall_x, TWOROOM_DEFAULT_WALL_X), _or(door_y, 32.0))
        self._backgrounds: dict[tuple[str, float, float, int], NDArray[np.uint8]] = {}
        self._use_layout(first)
        start, self._goal = _default_start_goal(first)
        self._physics.set(start[:2], start[2:4])

    # ----------------------------------------------------------------- layout and queries

    @property
    def layout(self) -> MazeLayout:
        """The current wall layout (geometry, units, success distance)."""
        return self._layout

    @property
    def walls(self) -> NDArray[np.float64]:
        """The current wall rectangles ``(K, 4)`` as ``x0, y0, x1, y1`` in layout units."""
        return self._layout.walls.copy()

    def free(self, x: ArrayLike, y: ArrayLike, radius: float | None = None) -> NDArray[np.bool_]:
        """Whether the agent (or a disc of ``radius``) at ``(x, y)`` touches no wall."""
        r = self._layout.agent_radius if radius is None else radius
        return self._layout.free(x, y, r)

    @property
    def goal_state(self) -> NDArray[np.float64]:
        """The goal state the success check compares against."""
        return self._goal.copy()

    # ----------------------------------------------------------------- state

    def get_state(self) -> NDArray[np.float64]:
        """Return ``(x, y, vx, vy, layout, wall_x, door_y)`` as float64."""
        lay = self._layout
        pos, vel = self._physics.position, self._physics.velocity
        return np.array([*pos, *vel, lay.layout_id, lay.wall_x, lay.door_y], dtype=np.float64)

    def set_state(self, state: NDArray[np.floating]) -> None:
        """Put the world into ``state``; a state of another layout switches the layout.

        When the layout changes, the goal (meaningless in the new walls) becomes the
        state itself; give goals through ``reset(options={"goal_state": ...})``.

        Raises:
            ValueError: Wrong shape, non-finite values, unknown layout, bad wall/door
                parameters or a position inside a wall.
        """
        full = self._validated(state, "state")
        layout = _layout_of(full)
        if not _same_layout(layout, self._layout):
            self._use_layout(layout)
            self._goal = full.copy()
        self._physics.set(full[:2], full[2:4])

    def evaluate_state(
        self, state: NDArray[np.floating], goal: NDArray[np.floating]
    ) -> dict[str, float | bool]:
        """``{"is_success": distance < threshold, "distance": |pos - goal pos|}`` (layout units)."""
        s = _as_vector(state, "state")
        g = _as_vector(goal, "goal")
        if not np.array_equal(s[4:], g[4:]):
            raise ValueError(
                f"state and goal must share the layout (layout, wall_x, door_y); "
                f"got {s[4:].tolist()} and {g[4:].tolist()}"
            )
        threshold = SUCCESS_DISTANCE[LAYOUTS[int(s[4])]]
        distance = float(np.linalg.norm(s[:2] - g[:2]))
        return {"is_success": distance < threshold, "distance": distance}

    # ----------------------------------------------------------------- gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        """Start an episode; ``options`` may hold layout, wall_x, door_y, state, goal_state.

        ``state`` and ``goal_state`` may be a position ``(2,)``, position and velocity
        ``(4,)`` or a full state ``(7,)`` of the episode's layout.
        """
        super().reset(seed=seed)
        opts = dict(options or {})
        unknown = set(opts) - OPTION_KEYS
        if unknown:
            raise ValueError(
                f"unknown reset options {sorted(unknown)}; known: {sorted(OPTION_KEYS)}"
            )
        self._use_layout(self._episode_layout(opts))
        start, goal = self._sample_start_goal()
        if opts.get("state") is not None:
            start = self._validated(self._complete(opts["state"], "state"), "state")
        if opts.get("goal_state") is not None:
            goal = self._validated(self._complete(opts["goal_state"], "goal_state"), "goal_state")
        self._physics.set(start[:2], start[2:4])
        self._goal = goal
        return self._observation(), self._info(clipped=False)

    def step(self, action: NDArray[np.float32]) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        """Advance one control step (see the module docstring for the action rules)."""
        checked = check_action(action, self._action_box)
        self._physics.advance(checked.value)
        info = self._info(clipped=checked.clipped)
        terminated = self.terminate_on_success and bool(info["is_success"])
        return self._observation(), float(info["is_success"]), terminated, False, info

    def render(self) -> NDArray[np.uint8]:
        """The current frame, uint8 ``(image_size, image_size, 3)``."""
        lay = self._layout
        key = (lay.name, lay.wall_x, lay.door_y, self.image_size)
        if key not in self._backgrounds:
            self._backgrounds[key] = background(lay, self.image_size)
        img = self._backgrounds[key].copy()
        draw_agent(img, lay, self._physics.position)
        return img

    # ----------------------------------------------------------------- pickling

    def __getstate__(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data["_physics"] = None
        data["_saved_state"] = self.get_state()
        return data

    def __setstate__(self, data: dict[str, Any]) -> None:
        saved = data.pop("_saved_state")
        self.__dict__.update(data)
        self._use_layout(self._layout, force=True)
        self._physics.set(saved[:2], saved[2:4])

    # ----------------------------------------------------------------- internals

    def _use_layout(self, layout: MazeLayout, force: bool = False) -> None:
        current: MazeLayout | None = getattr(self, "_layout", None)
        if force or current is None or not _same_layout(layout, current):
            self._physics: PointMassPhysics | DotPhysics = (
                PointMassPhysics(layout) if layout.name == "umaze" else DotPhysics(layout)
            )
        self._layout = layout

    def _episode_layout(self, opts: dict[str, Any]) -> MazeLayout:
        name = opts.get("layout", self._default_params["layout"])
        _check_layout_name(name)
        if name == "umaze":
            return make_layout("umaze")
        wall_x = opts.get("wall_x", self._default_params["wall_x"])
        door_y = opts.get("door_y", self._default_params["door_y"])
        if wall_x is None:
            wall_x = float(
                self.np_random.integers(TWOROOM_WALL_X_RANGE[0], TWOROOM_WALL_X_RANGE[1] + 1)
            )
        if door_y is None:
            door_y = float(
                self.np_random.integers(TWOROOM_DOOR_Y_RANGE[0], TWOROOM_DOOR_Y_RANGE[1] + 1)
            )
        return make_layout("tworoom", float(wall_x), float(door_y))

    def _sample_start_goal(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        lay = self._layout
        tail = [lay.layout_id, lay.wall_x, lay.door_y]
        if lay.name == "umaze":
            start_xy = self._sample_umaze_position()
            goal_xy = self._sample_umaze_position()
            while np.linalg.norm(goal_xy - start_xy) < UMAZE_MIN_START_GOAL:
                goal_xy = self._sample_umaze_position()
            velocity = self.np_random.normal(0.0, UMAZE_START_SPEED_STD, size=2)
        else:
            start_xy, goal_xy = self._sample_tworoom_positions()
            velocity = np.zeros(2)
        start = np.array([*start_xy, *velocity, *tail], dtype=np.float64)
        goal = np.array([*goal_xy, 0.0, 0.0, *tail], dtype=np.float64)
        return start, goal

    def _sample_umaze_position(self) -> NDArray[np.float64]:
        lay = self._layout
        clearance = lay.agent_radius + UMAZE_SAMPLE_CLEARANCE
        lo, hi = lay.extent[0] + 1.0, lay.extent[2] - 1.0
        while True:
            xy = self.np_random.uniform(lo, hi, size=2)
            if lay.is_free(float(xy[0]), float(xy[1]), clearance):
                return xy

    def _sample_tworoom_positions(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """DINO-WM's sampler: start left of the wall, goal right of it, swapped half the time."""
        lay = self._layout
        border = TWOROOM_BORDER + TWOROOM_SAMPLE_PADDING
        far = TWOROOM_SIZE - 1 - border
        left_max = lay.wall_x - TWOROOM_WALL_HALF_WIDTH - TWOROOM_SAMPLE_PADDING
        right_min = lay.wall_x + TWOROOM_WALL_HALF_WIDTH + TWOROOM_SAMPLE_PADDING
        rng = self.np_random
        start = np.array([rng.uniform(border, left_max), rng.uniform(border, far)])
        goal = np.array([rng.uniform(right_min, far), rng.uniform(border, far)])
        if rng.uniform() < 0.5:
            start, goal = goal, start
        return start, goal

    def _complete(self, value: object, name: str) -> NDArray[np.float64]:
        """Extend a position ``(2,)`` or position+velocity ``(4,)`` with the current layout."""
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"options[{name!r}] must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
        lay = self._layout
        tail = [lay.layout_id, lay.wall_x, lay.door_y]
        if arr.shape == (2,):
            return np.array([*arr, 0.0, 0.0, *tail])
        if arr.shape == (4,):
            return np.array([*arr, *tail])
        full = _as_vector(arr, name)
        if not np.array_equal(full[4:], np.array(tail, dtype=np.float64)):
            raise ValueError(
                f"options[{name!r}] is for layout/wall_x/door_y {full[4:].tolist()}, but the "
                f"episode has {tail}; pass layout, wall_x and door_y options to match"
            )
        return full

    def _validated(self, state: object, name: str) -> NDArray[np.float64]:
        full = _as_vector(state, name)
        lay = _layout_of(full)
        tolerance = UMAZE_OVERLAP_TOLERANCE if lay.name == "umaze" else 0.0
        x, y = float(full[0]), float(full[1])
        if not lay.is_free(x, y, lay.agent_radius - tolerance):
            raise ValueError(
                f"{name} position ({x:.4g}, {y:.4g}) is inside a wall of the {lay.name} layout; "
                f"it must lie in free space (see env.free)"
            )
        return full

    def _observation(self) -> Obs:
        proprio = np.concatenate([self._physics.position, self._physics.velocity])
        if self.render_pixels:
            pixels = self.render()
        else:
            pixels = np.zeros((self.image_size, self.image_size, 3), dtype=np.uint8)
        return {"pixels": pixels, "proprio": proprio.astype(np.float32)}

    def _info(self, clipped: bool) -> dict[str, Any]:
        state = self.get_state()
        distance = float(np.linalg.norm(state[:2] - self._goal[:2]))
        return {
            "is_success": distance < self._layout.success_distance,
            "distance": distance,
            "state": state,
            "action_clipped": clipped,
            "layout": self._layout.name,
        }


def _default_start_goal(layout: MazeLayout) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The state before the first reset: D4RL's start corner and goal cell, or across the door."""
    tail = [layout.layout_id, layout.wall_x, layout.door_y]
    if layout.name == "umaze":
        start_xy, goal_xy = (3.0, 1.0), (1.0, 1.0)
    else:
        start_xy, goal_xy = (
            (layout.wall_x - 13.0, layout.door_y),
            (layout.wall_x + 13.0, layout.door_y),
        )
    start = np.array([*start_xy, 0.0, 0.0, *tail], dtype=np.float64)
    goal = np.array([*goal_xy, 0.0, 0.0, *tail], dtype=np.float64)
    return start, goal


def _or(value: float | None, default: float) -> float:
    return default if value is None else float(value)


def _check_layout_name(name: object) -> None:
    if name not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {name!r}")


def _as_vector(state: object, name: str) -> NDArray[np.float64]:
    arr = np.asarray(state)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    n = len(MazeEnv.state_labels)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) {MazeEnv.state_labels}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    if np.any(np.abs(arr[2:4]) > MAX_STATE_SPEED):
        raise ValueError(
            f"{name} velocity must be within +-{MAX_STATE_SPEED}, got {arr[2:4].tolist()}"
        )
    if arr[4] not in (0.0, 1.0):
        raise ValueError(f"{name}[4] (layout) must be 0 (umaze) or 1 (tworoom), got {arr[4]}")
    return arr


def _layout_of(state: NDArray[np.float64]) -> MazeLayout:
    name: LayoutName = LAYOUTS[int(state[4])]
    if name == "umaze":
        return make_layout("umaze")
    return make_layout("tworoom", float(state[5]), float(state[6]))


def _same_layout(a: MazeLayout, b: MazeLayout) -> bool:
    return (a.name, a.wall_x, a.door_y) == (b.name, b.wall_x, b.door_y)
