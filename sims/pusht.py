"""push-T: push a T-shaped block onto a goal pose with a circular pusher.

A faithful re-implementation of the standard push-T task (the diffusion-policy
env and its ``gym-pusht`` port), with the relative actions DINO-WM uses.

Physics (pymunk 7), in pixels and seconds, image ``y`` pointing down:

* Workspace 512 x 512, no gravity; four static walls with the inner faces of
  the reference's (segments of radius 2 through (5, 5), (506, 5), (506, 506),
  (5, 506)), i.e. at 7 and 504 px.
* ``space.damping = 0``: every body loses all its velocity at each physics
  step, so the T moves only while it is being pushed.
* Physics at 100 Hz (``dt = 0.01``), control at 10 Hz: one env step is 10
  physics steps.
* Pusher: a kinematic circle of radius 15, driven toward a target by the PD
  rule ``v += (100 (target - p) - 20 v) dt`` before every physics step.
* T: one body of mass 1 made of two boxes, the bar ``x in [-60, 60], y in
  [0, 30]`` and the stem ``x in [-15, 15], y in [30, 120]`` (area 6300 px^2);
  friction and elasticity 0.

Where this differs from the reference, and why:

* Inertia and centre of gravity. The reference gives the body the moment
  ``2 * moment_for_poly(1, bar)`` about the body origin (3000, counting the bar
  twice and the stem never) and puts the centre of gravity at the unweighted
  midpoint of the two box centroids, (0, 45). Here each box carries mass in
  proportion to its area and pymunk derives the body's mass properties from
  them: mass 1, centre of gravity at the true centroid (0, 40.71), moment about
  it 1931.6 (parallel-axis sum of the two boxes). The T therefore turns about
  1.5 times more easily under the same push than in the reference.
* Pose. The block pose ``(x, y, angle)`` is that of the body origin (the middle
  of the bar's outer edge, local (0, 0)), as in the reference's observations.
  Poses are always applied angle first, then position, so that setting a pose
  never moves the origin (the reference sets the position first, which rotates
  the body about its centre of gravity and shifts the origin).
* Markov state. Chipmunk integrates positions with the velocity left by the
  previous physics step, and remembers cached contact impulses, its
  spatial-index layout and shape ids; the reference therefore carries hidden
  state from one env step to the next. Here each env step ends by applying the
  T's pending displacement at once and zeroing its velocity, and before any
  step that may involve a contact the space is rebuilt from the state. The T's
  trajectory is the same up to solver warm starting across env steps, and the
  7-number state below is the whole state: :meth:`PushTEnv.set_state` (or
  unpickling, which goes through the state) followed by the same actions gives
  bit-identical results to the env the state was read from.
* Walls. The reference's walls are segments of radius 2; a T jammed between
  the (kinematic, unstoppable) pusher and a wall can pop through one and leave
  the workspace. Here the walls are slabs 100 px thick with the same inner
  faces, so contacts are unchanged but the T stays inside.
* Reset. Positions are drawn from continuous uniforms (the reference draws
  integers), and a start where the pusher overlaps the T, or the T a wall
  (the stem can reach 120 px from the origin), is redrawn.
* Targets. A relative action ``a`` in ``[-1, 1]^2`` sets the target
  ``agent + 100 a`` (DINO-WM's convention), clipped to the workspace
  ``[0, 512]^2`` (as stable-worldmodel does).

Task: the goal is a full state; by default the block at (256, 256, pi/4) and
the pusher resting 25 px clear of the bar's outer edge, at the goal T's local
(0, -40), i.e. (284.28, 227.72). Success is DINO-WM's criterion: the L2 norm of
the 4-vector (agent x, agent y, block x, block y) minus the goal's below 20 px,
and the wrapped block angle error below pi/9. The episode terminates on success
(gym-pusht and stable-worldmodel do; pass ``terminate_on_success=False`` for a
fixed budget). The metric is the coverage, ``area(goal T & T) / area(goal T)``,
computed exactly by clipping the boxes of one T against those of the other;
the reward is the coverage (gym-pusht scales it by 1/0.95 and clips; it is left
unscaled here).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import cv2
import numpy as np
import pymunk
from gymnasium import spaces
from numpy.typing import NDArray

from sims.base import SHIFT, WorldEnv, check_action, fill_circle, fill_polygon, to_fixed

WORKSPACE = 512.0
DT = 0.01
SUBSTEPS = 10
KP, KV = 100.0, 20.0
AGENT_RADIUS = 15.0
ACTION_SCALE = 100.0
WALL_RADIUS = 2.0
WALL_POINTS = ((5.0, 5.0), (506.0, 5.0), (506.0, 506.0), (5.0, 506.0))
# The two boxes of the T in its local frame, (x0, y0, x1, y1).
T_BOXES = ((-60.0, 0.0, 60.0, 30.0), (-15.0, 30.0, 15.0, 120.0))
T_AREA = 6300.0
# The T's outline in its local frame (clockwise on screen, where y points down).
T_OUTLINE = np.array(
    [(-60, 0), (60, 0), (60, 30), (15, 30), (15, 120), (-15, 120), (-15, 30), (-60, 30)],
    dtype=np.float64,
)
T_CENTROID_LOCAL = (0.0, (3600.0 * 15.0 + 2700.0 * 75.0) / T_AREA)
# Every point of the T lies within this distance of its centroid (the stem's far corners).
T_RADIUS = float(np.linalg.norm(T_OUTLINE - np.array(T_CENTROID_LOCAL), axis=1).max())
# The inner faces of the walls.
_INNER_LO, _INNER_HI = WALL_POINTS[0][0] + WALL_RADIUS, WALL_POINTS[2][0] - WALL_RADIUS
# The walls as solid slabs with the reference's inner faces: a T squeezed by the
# kinematic pusher is pushed back inside instead of popping through a thin wall.
_WALL_BOXES = (
    (-100.0, -100.0, _INNER_LO, 612.0),
    (_INNER_HI, -100.0, 612.0, 612.0),
    (-100.0, -100.0, 612.0, _INNER_LO),
    (-100.0, _INNER_HI, 612.0, 612.0),
)
GOAL_BLOCK_POSE = (256.0, 256.0, math.pi / 4)
GOAL_AGENT_LOCAL = (0.0, -40.0)
SUCCESS_POS_PX = 20.0
SUCCESS_ANGLE = math.pi / 9
STATE_DIM = 7
# Bounds of the proprio (agent x, y, vx, vy). The PD rule toward targets in the
# workspace keeps the pusher within a few px of it and below ~500 px/s per axis.
PROPRIO_LOW = np.array([-64.0, -64.0, -1000.0, -1000.0], dtype=np.float32)
PROPRIO_HIGH = np.array([576.0, 576.0, 1000.0, 1000.0], dtype=np.float32)

# Colours (RGB) of the reference renderer: fills are the base colour brightened by 1.2.
_WALL = (211, 211, 211)
_GOAL = (144, 238, 144)
_BLOCK_EDGE, _BLOCK_FILL = (119, 136, 153), (142, 163, 183)
_AGENT_EDGE, _AGENT_FILL = (65, 105, 225), (78, 126, 255)
_EDGE = 2.0  # outline half-width in workspace pixels
# The T dilated by the outline half-width (one polygon), and its two boxes shrunk by it.
_T_OUTER = np.array(
    [(-62, -2), (62, -2), (62, 32), (17, 32), (17, 122), (-17, 122), (-17, 32), (-62, 32)],
    dtype=np.float64,
)

Pose = tuple[float, float, float]


def local_to_world(points: NDArray[np.floating], pose: Pose) -> NDArray[np.float64]:
    """Map points (K, 2) from the T's local frame to the workspace for ``pose``."""
    x, y, angle = pose
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    out: NDArray[np.float64] = np.asarray(points, dtype=np.float64) @ rot.T + np.array([x, y])
    return out


def world_to_local(points: NDArray[np.floating], pose: Pose) -> NDArray[np.float64]:
    """Map points (K, 2) from the workspace to the T's local frame for ``pose``."""
    x, y, angle = pose
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    out: NDArray[np.float64] = (np.asarray(points, dtype=np.float64) - np.array([x, y])) @ rot
    return out


def _box_corners(box: tuple[float, float, float, float], grow: float = 0.0) -> NDArray[np.float64]:
    x0, y0, x1, y1 = box
    x0, y0, x1, y1 = x0 - grow, y0 - grow, x1 + grow, y1 + grow
    return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], dtype=np.float64)


_T_INNER = [_box_corners(box, -_EDGE) for box in T_BOXES]
# Centres and circumradii of the T's boxes, to skip box pairs that cannot overlap.
_BOX_CENTRES = [((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in T_BOXES]
_BOX_RADII = [math.hypot(x1 - x0, y1 - y0) / 2 for x0, y0, x1, y1 in T_BOXES]
# Vertex lists for pymunk.
_T_VERTICES = [[(float(x), float(y)) for x, y in _box_corners(b)] for b in T_BOXES]
_WALL_VERTICES = [[(float(x), float(y)) for x, y in _box_corners(b)] for b in _WALL_BOXES]


def _fill(
    img: NDArray[np.uint8], polygons: list[NDArray[np.float64]], color: tuple[int, int, int]
) -> None:
    """Fill several disjoint polygons (each (K, 2), cv2 pixel coordinates) in one call."""
    contours = [to_fixed(p).reshape(-1, 1, 2) for p in polygons]
    cv2.fillPoly(img, contours, color, cv2.LINE_AA, SHIFT)


def block_polygons(pose: Pose) -> list[NDArray[np.float64]]:
    """The two boxes of the T at ``pose`` as workspace polygons, each (4, 2)."""
    return [local_to_world(_box_corners(box), pose) for box in T_BOXES]


def block_centroid(pose: Pose) -> NDArray[np.float64]:
    """The T's centre of mass in the workspace for ``pose``, shape (2,)."""
    return np.array(_to_world(T_CENTROID_LOCAL, pose))


def _to_world(point: tuple[float, float], pose: Pose) -> tuple[float, float]:
    """One local point to the workspace (scalar code: these run in every step)."""
    x, y, angle = pose
    c, s = math.cos(angle), math.sin(angle)
    return x + c * point[0] - s * point[1], y + s * point[0] + c * point[1]


def _clip(subject: list[tuple[float, float]], clip: list[tuple[float, float]]) -> list[Any]:
    """Intersect two convex polygons of the same orientation (Sutherland-Hodgman)."""
    out = subject
    for i in range(len(clip)):
        if not out:
            break
        ax, ay = clip[i]
        bx, by = clip[(i + 1) % len(clip)]
        ex, ey = bx - ax, by - ay
        pts, out = out, []
        for j in range(len(pts)):
            px, py = pts[j]
            qx, qy = pts[(j + 1) % len(pts)]
            dp = ex * (py - ay) - ey * (px - ax)
            dq = ex * (qy - ay) - ey * (qx - ax)
            if dp >= 0:
                out.append((px, py))
            if (dp >= 0) != (dq >= 0):
                t = dp / (dp - dq)
                out.append((px + t * (qx - px), py + t * (qy - py)))
    return out


def _area(poly: list[tuple[float, float]]) -> float:
    total = 0.0
    for i in range(len(poly)):
        x0, y0 = poly[i]
        x1, y1 = poly[(i + 1) % len(poly)]
        total += x0 * y1 - x1 * y0
    return abs(total) / 2.0


def coverage(pose: Pose, goal_pose: Pose) -> float:
    """Exact fraction of the goal T's area covered by the T at ``pose``.

    Each T is two boxes with disjoint interiors, so the overlap is the sum of
    the four box-box intersections, each a convex clip.
    """
    ax, ay = _to_world(T_CENTROID_LOCAL, pose)
    bx, by = _to_world(T_CENTROID_LOCAL, goal_pose)
    if math.hypot(ax - bx, ay - by) > 2 * T_RADIUS:
        return 0.0
    mine = [[(float(x), float(y)) for x, y in p] for p in block_polygons(pose)]
    goal = [[(float(x), float(y)) for x, y in p] for p in block_polygons(goal_pose)]
    centres = [[_to_world(c, q) for c in _BOX_CENTRES] for q in (pose, goal_pose)]
    overlap = 0.0
    for i, m in enumerate(mine):
        for j, g in enumerate(goal):
            (mx, my), (gx, gy) = centres[0][i], centres[1][j]
            if math.hypot(mx - gx, my - gy) < _BOX_RADII[i] + _BOX_RADII[j]:
                overlap += _area(_clip(m, g))
    return min(overlap / T_AREA, 1.0)


def angle_difference(a: float, b: float) -> float:
    """Absolute difference of two angles, wrapped into [0, pi]."""
    d = abs(a - b) % (2 * math.pi)
    return min(d, 2 * math.pi - d)


def default_goal_state() -> NDArray[np.float64]:
    """The default goal: the T at (256, 256, pi/4), the pusher 25 px clear of its bar."""
    agent = local_to_world(np.array([GOAL_AGENT_LOCAL]), GOAL_BLOCK_POSE)[0]
    return np.array([agent[0], agent[1], *GOAL_BLOCK_POSE, 0.0, 0.0], dtype=np.float64)


def agent_block_distance(agent_xy: NDArray[np.floating], pose: Pose) -> float:
    """Distance from a point to the T at ``pose`` (0 inside)."""
    x, y, angle = pose
    c, s = math.cos(angle), math.sin(angle)
    dx0, dy0 = float(agent_xy[0]) - x, float(agent_xy[1]) - y
    lx, ly = c * dx0 + s * dy0, -s * dx0 + c * dy0
    best = math.inf
    for x0, y0, x1, y1 in T_BOXES:
        dx = max(x0 - lx, 0.0, lx - x1)
        dy = max(y0 - ly, 0.0, ly - y1)
        best = min(best, math.hypot(dx, dy))
    return best


def _possible_contacts(
    state: NDArray[np.float64], target: NDArray[np.float64]
) -> tuple[bool, bool]:
    """Whether the pusher may touch the T, and the T a wall, during the next env step.

    Conservative bounds: under the critically damped PD rule the pusher's path
    is at most the distance to its target plus ``2 |v| / (e * 10 / s)`` < 0.074
    |v| long (0.1 |v| is used), and the first ``gap`` of it is free of the T. A T
    that is not touched does not move; no point of a pushed T moves faster than
    ``1 + T_RADIUS^2 m / I`` = 4.4 < 4.5 times the pusher (an impulse J at the
    contact changes the contact point's velocity by at least J/m along the push,
    and any point's by at most J/m + J T_RADIUS^2 / I).
    """
    pose = (float(state[2]), float(state[3]), float(state[4]))
    margin = 2.0
    reach = math.hypot(target[0] - state[0], target[1] - state[1])
    reach += math.hypot(state[5], state[6]) * DT * SUBSTEPS + margin
    gap = agent_block_distance(state[:2], pose) - AGENT_RADIUS
    pushed = gap < reach
    corners = local_to_world(T_OUTLINE, pose)
    to_wall = min(corners.min() - _INNER_LO, _INNER_HI - corners.max())
    walls = to_wall < (4.5 * (reach - max(gap, 0.0)) if pushed else 0.0) + margin
    return pushed, walls


def _check_state(state: object, name: str, bounded: bool = False) -> NDArray[np.float64]:
    """Validate a state vector; ``bounded`` also requires the agent inside the proprio box."""
    arr = np.asarray(state)
    if arr.dtype.kind not in "biuf" or arr.shape != (STATE_DIM,):
        raise ValueError(
            f"{name} must be a numeric vector of shape ({STATE_DIM},) "
            f"(agent_x, agent_y, block_x, block_y, block_angle, agent_vx, agent_vy), "
            f"got shape {arr.shape} dtype {arr.dtype}"
        )
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    agent = arr[[0, 1, 5, 6]]
    if bounded and (np.any(agent < PROPRIO_LOW) or np.any(agent > PROPRIO_HIGH)):
        raise ValueError(
            f"{name}: agent position must lie in [-64, 576] px and velocity in "
            f"[-1000, 1000] px/s, got position {arr[:2].tolist()} velocity {arr[5:].tolist()}"
        )
    return arr


def _score(s: NDArray[np.float64], g: NDArray[np.float64]) -> dict[str, float | bool]:
    """DINO-WM's success check and the exact coverage, for checked states."""
    pos_error = float(np.linalg.norm(s[:4] - g[:4]))
    angle_error = angle_difference(float(s[4]), float(g[4]))
    return {
        "is_success": bool(pos_error < SUCCESS_POS_PX and angle_error < SUCCESS_ANGLE),
        "coverage": coverage((s[2], s[3], s[4]), (g[2], g[3], g[4])),
        "pos_error": pos_error,
        "angle_error": angle_error,
    }


class PushTEnv(WorldEnv):
    """push-T as a worldplan env (see the module docstring for the physics).

    * Action: ``Box(-1, 1, (2,), float32)``, the pusher's relative displacement:
      target = agent position + 100 px * action. Out-of-box actions are clipped
      and reported in ``info["action_clipped"]``; a wrong shape or a non-finite
      value raises ``ValueError`` and leaves the state untouched.
    * Observation: ``pixels`` uint8 (S, S, 3), drawn directly at ``image_size``;
      ``proprio`` float32 (4,) = agent x, y (px), vx, vy (px/s).
    * State: see ``state_labels``; the block pose is that of the T's body origin.
    * ``info``: ``is_success``, ``coverage``, ``pos_error`` (px, the norm used
      by the success check), ``angle_error`` (rad), ``state``, ``action_clipped``.

    Args:
        render_mode: Only ``"rgb_array"``.
        image_size: Side of the rendered square image in pixels.
        draw_goal: Draw the goal T (light green) under the scene, as the
            reference renderer does. Off by default: goals are given as images.
        terminate_on_success: End the episode when the success check holds.
    """

    state_labels = (
        "agent_x",
        "agent_y",
        "block_x",
        "block_y",
        "block_angle",
        "agent_vx",
        "agent_vy",
    )
    metric_name = "coverage"

    def __init__(
        self,
        render_mode: str = "rgb_array",
        image_size: int = 224,
        draw_goal: bool = False,
        terminate_on_success: bool = True,
        render_pixels: bool = True,
    ) -> None:
        super().__init__()
        if render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be 'rgb_array', got {render_mode!r}")
        if not isinstance(image_size, int) or not 16 <= image_size <= 4096:
            raise ValueError(f"image_size must be an int in [16, 4096], got {image_size!r}")
        self.render_mode = render_mode
        self.image_size = image_size
        self.draw_goal = bool(draw_goal)
        self.terminate_on_success = bool(terminate_on_success)
        # False: observations carry a black frame (state-only runs and benchmarks).
        self.render_pixels = bool(render_pixels)
        self._action_box = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = self._action_box
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                "pixels": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
                "proprio": spaces.Box(PROPRIO_LOW, PROPRIO_HIGH, (4,), np.float32),
            }
        )
        self._goal = default_goal_state()
        self._state = np.array([256.0, 400.0, 256.0, 300.0, 0.0, 0.0, 0.0])
        self._build_space(self._state)

    # ----------------------------------------------------------------- physics

    def _set_pose(self, state: NDArray[np.float64]) -> None:
        self._agent.position = (float(state[0]), float(state[1]))
        self._agent.velocity = (float(state[5]), float(state[6]))
        self._block.angle = float(state[4])  # angle first: keeps the origin where it is set
        self._block.position = (float(state[2]), float(state[3]))
        self._block.velocity = (0.0, 0.0)
        self._block.angular_velocity = 0.0

    def _build_space(self, state: NDArray[np.float64], walls: bool = True) -> None:
        """Create the space, pusher, T and (if ``walls``) walls afresh, posed at ``state``.

        The pose is set before the shapes are added (so the spatial index is
        built where they are) and again after, because adding shapes re-derives
        the T's mass properties and nudges its position by rounding. The walls
        only ever touch the T, and are left out when it cannot reach them.
        """
        space = pymunk.Space()
        space.gravity = (0.0, 0.0)
        space.damping = 0.0
        self._agent = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        self._block = pymunk.Body()
        shapes = [pymunk.Poly(self._block, v) for v in _T_VERTICES]
        for shape, box in zip(shapes, T_BOXES, strict=True):
            # Mass in proportion to area: pymunk derives the centroid and the moment.
            shape.mass = (box[2] - box[0]) * (box[3] - box[1]) / T_AREA
        self._set_pose(state)
        space.add(self._agent, pymunk.Circle(self._agent, AGENT_RADIUS), self._block, *shapes)
        self._set_pose(state)
        if walls:
            space.add(*(pymunk.Poly(space.static_body, v) for v in _WALL_VERTICES))
        self._space = space

    def _read(self) -> NDArray[np.float64]:
        """The state after a physics run, with the T's pending displacement applied."""
        pymunk.Body.update_position(self._block, DT)
        a, b = self._agent, self._block
        angle = b.angle % (2 * math.pi)
        return np.array(
            [a.position.x, a.position.y, b.position.x, b.position.y, angle, *a.velocity],
            dtype=np.float64,
        )

    def _simulate(self, target: NDArray[np.float64]) -> None:
        """Run the 10 physics steps, driving the pusher with the PD rule."""
        tx, ty = float(target[0]), float(target[1])
        agent, space = self._agent, self._space
        vx, vy = float(self._state[5]), float(self._state[6])  # a kinematic velocity is ours
        for _ in range(SUBSTEPS):
            px, py = agent.position
            vx += (KP * (tx - px) - KV * vx) * DT
            vy += (KP * (ty - py) - KV * vy) * DT
            agent.velocity = (vx, vy)
            space.step(DT)

    # ------------------------------------------------------------------- state

    def get_state(self) -> NDArray[np.float64]:
        """Return (agent_x, agent_y, block_x, block_y, block_angle, agent_vx, agent_vy)."""
        return self._state.copy()

    def set_state(self, state: NDArray[np.floating]) -> None:
        """Put the simulation into ``state`` exactly (see ``state_labels``)."""
        checked = _check_state(state, "state", bounded=True)
        self._state = checked
        self._set_pose(checked)

    @property
    def goal_state(self) -> NDArray[np.float64]:
        """The goal state the success check compares against."""
        return self._goal.copy()

    def evaluate_state(
        self, state: NDArray[np.floating], goal: NDArray[np.floating]
    ) -> dict[str, float | bool]:
        """Score ``state`` against ``goal`` (DINO-WM success, exact coverage)."""
        return _score(_check_state(state, "state"), _check_state(goal, "goal"))

    def _sample_state(self) -> NDArray[np.float64]:
        rng = self.np_random
        while True:
            agent = rng.uniform(50.0, 450.0, size=2)
            block = rng.uniform(100.0, 400.0, size=2)
            angle = rng.uniform(-math.pi, math.pi) % (2 * math.pi)  # stored in [0, 2 pi)
            pose = (float(block[0]), float(block[1]), float(angle))
            corners = local_to_world(T_OUTLINE, pose)
            inside = corners.min() > _INNER_LO + 1.0 and corners.max() < _INNER_HI - 1.0
            if inside and agent_block_distance(agent, pose) > AGENT_RADIUS + 1.0:
                return np.array([*agent, *pose, 0.0, 0.0], dtype=np.float64)

    # --------------------------------------------------------------- gym API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        """Start an episode; ``options`` may give ``"state"`` and ``"goal_state"``."""
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"state", "goal_state"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; known: goal_state, state")
        goal = options.get("goal_state")
        self._goal = default_goal_state() if goal is None else _check_state(goal, "goal_state")
        start = options.get("state")
        self.set_state(self._sample_state() if start is None else start)
        return self._observation(), self._info(clipped=False)

    def step(
        self, action: NDArray[np.float32]
    ) -> tuple[dict[str, NDArray[Any]], float, bool, bool, dict[str, Any]]:
        """Move the pusher toward agent + 100 px * action for 0.1 s (10 physics steps)."""
        reward, terminated, info = self.step_state(action)
        return self._observation(), reward, terminated, False, info

    def step_state(self, action: NDArray[np.float32]) -> tuple[float, bool, dict[str, Any]]:
        """:meth:`step` without drawing: ``(reward, terminated, info)``.

        For state-only rollouts and benchmarks; the new state is ``info["state"]``.
        """
        checked = check_action(action, self._action_box)
        target = np.clip(self._state[:2] + ACTION_SCALE * checked.value, 0.0, WORKSPACE)
        pushed, walls = _possible_contacts(self._state, target)
        if pushed or walls:
            # Chipmunk remembers cached contact impulses, its spatial-index layout
            # and shape ids, and these change how contacts are solved: before a
            # step that may have contacts the space is rebuilt from the state, so
            # the result is a function of (state, action) alone. Without contacts
            # nothing it remembers matters, and the rebuild is skipped.
            self._build_space(self._state, walls=walls)
        self._simulate(target)
        self._state = self._read()
        self._set_pose(self._state)
        info = self._info(clipped=checked.clipped)
        terminated = bool(self.terminate_on_success and info["is_success"])
        return float(info["coverage"]), terminated, info

    def _info(self, clipped: bool) -> dict[str, Any]:
        info: dict[str, Any] = dict(_score(self._state, self._goal))
        info["state"] = self.get_state()
        info["action_clipped"] = clipped
        return info

    def _observation(self) -> dict[str, NDArray[Any]]:
        proprio = self._state[[0, 1, 5, 6]].astype(np.float32)
        if self.render_pixels:
            pixels = self._draw(self._state)
        else:
            pixels = np.zeros((self.image_size, self.image_size, 3), np.uint8)
        return {"pixels": pixels, "proprio": proprio}

    def render(self) -> NDArray[np.uint8]:
        """Return the current frame, uint8 (image_size, image_size, 3)."""
        return self._draw(self._state)

    # ---------------------------------------------------------------- drawing

    def render_state(self, state: NDArray[np.floating]) -> NDArray[np.uint8]:
        """Draw ``state`` (e.g. a goal) without touching the simulation.

        Drawn directly at ``image_size`` with anti-aliased, sub-pixel polygons
        in the reference's look: walls, optional goal T, the T (outlined boxes,
        so the seam between bar and stem shows), then the pusher.
        """
        return self._draw(_check_state(state, "state"))

    def _draw(self, s: NDArray[np.float64]) -> NDArray[np.uint8]:
        img = self._background.copy()
        if self.draw_goal:
            goal = local_to_world(T_OUTLINE, (self._goal[2], self._goal[3], self._goal[4]))
            _fill(img, [self._to_pixels(goal)], _GOAL)
        pose = (float(s[2]), float(s[3]), float(s[4]))
        _fill(img, [self._to_pixels(local_to_world(_T_OUTER, pose))], _BLOCK_EDGE)
        inner = [self._to_pixels(local_to_world(box, pose)) for box in _T_INNER]
        _fill(img, inner, _BLOCK_FILL)
        center = self._to_pixels(s[:2])
        scale = self.image_size / WORKSPACE
        fill_circle(img, center, AGENT_RADIUS * scale, _AGENT_EDGE)
        fill_circle(img, center, (AGENT_RADIUS - 4.0) * scale, _AGENT_FILL)
        return img

    def _to_pixels(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """Workspace coordinates to cv2 pixel coordinates (pixel centres at integers)."""
        out: NDArray[np.float64] = points * (self.image_size / WORKSPACE) - 0.5
        return out

    @functools.cached_property
    def _background(self) -> NDArray[np.uint8]:
        img = np.full((self.image_size, self.image_size, 3), 255, dtype=np.uint8)
        for i in range(4):
            (x0, y0), (x1, y1) = WALL_POINTS[i], WALL_POINTS[(i + 1) % 4]
            box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            fill_polygon(img, self._to_pixels(_box_corners(box, WALL_RADIUS)), _WALL)
        return img

    # ---------------------------------------------------------------- pickle

    def __getstate__(self) -> dict[str, Any]:
        skip = {"_space", "_agent", "_block", "_background"}
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)
        self._build_space(self._state)
