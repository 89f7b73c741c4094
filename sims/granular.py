"""``worldplan/Granular-v0``: gather small discs on a table with straight pusher strokes.

An analogue in pymunk of DINO-WM's FleX granular task (``env/deformable_env``): a pile of
about a hundred pieces on a table seen from above, pushed by a flat board that is lowered
at a stroke's start, slid in a straight line to its end and lifted.

Units and frames. Lengths are *table units* (DINO-WM's world units: its pile is ~2.24 wide,
its pieces 0.2). The table is the square ``[-TABLE_HALF, TABLE_HALF]^2`` (``x`` right,
``y`` up) with a rigid rim along its edge, so discs never leave it. The image shows the
whole table: pixel ``(u, v) = ((x + TABLE_HALF), (TABLE_HALF - y)) * S / (2 TABLE_HALF)``.

Action: ``Box(-1, 1, (4,), float32)`` = ``(x_start, y_start, x_end, y_end)`` in normalised
table coordinates; world = ``REACH * action`` (``REACH`` = 2.6, so strokes start and end in
``[-2.6, 2.6]^2`` on the ``[-3, 3]^2`` table; DINO-WM: ``[x_start, z_start, x_end, z_end]``
in world units). The reach stops short of the rim so that the board's face never comes
closer to it than 0.3 (1.7 to 2.9 disc diameters for 100 to 300 discs). A wrong shape or
a non-finite value raises ``ValueError`` and leaves the state untouched; out-of-box values
are clipped and reported in ``info["action_clipped"]``.

One step = one stroke. The board is a pymunk segment of length ``BOARD_LENGTH`` = 1 and
radius ``BOARD_RADIUS`` = 0.1 (a flat board with rounded ends, like DINO-WM's ~1.0 x 0.26
board; the rounded ends give a well-defined contact normal at its corners), held
perpendicular to the stroke. A kinematic target moves from the start to the end at
constant speed, ``STROKE_STEP`` = 0.04 per substep of ``DT``; the board (which never
rotates and passes over the rim) follows it through a pivot joint whose force is capped
at ``BOARD_FORCE``: enough to push the whole pile across the table, but when discs are
jammed against the rim the board stalls a little short of the end instead of crushing
them through each other, the rim or itself (a purely kinematic board does that). The step
per substep is under a third of the disc radius plus the board's half-thickness
(0.15 at 300 discs), so no disc tunnels through the board. Discs that lie under the board
where it is lowered are pushed out of it by the contact solver. After the stroke the board
is lifted where it stopped and the discs settle for ``SETTLE_STEPS`` substeps. There is no
gravity in the plane; friction with the table is a strong velocity damping (a disc keeps
``RETAIN`` = 0.5 of its speed per substep, so pushing is nearly quasi-static, as with
granular matter, and discs coast only about a tenth of their radius after the board
stops). The state holds no velocities: each stroke starts from rest in a pymunk world
rebuilt from the state, so a step is a pure function of ``(state, action)`` (no solver
cache carries over) and ``set_state``, pickling and seeding are exact.

Goal: a target particle configuration. By default DINO-WM's rule: the start configuration
scaled about its centroid by ``U(0.6, 0.9)`` (gathered in) and shifted by ``(±d, ±d)``
with ``d ~ U(0, 1)`` and random signs (DINO-WM draws ``U(-1, 1)`` and a random sign per
axis), clamped into the table; a draw whose start already counts as a success is
redrawn. ``reset(options={"goal_state": ...})`` gives one explicitly.

Metric: the Chamfer distance between the particle sets (mean nearest-neighbour distance
from each set to the other, summed, as DINO-WM), in table units, in
``info["chamfer"]``; success when it is below ``SUCCESS_CHAMFER`` = 0.25 table units (about
three disc radii at 100 discs: the pile gathered onto the goal; a physically relaxed copy
of the goal scores ~0.08, the start 0.25 to 1.4, median ~0.6; random strokes scatter the
pile and only raise it). Reward: ``-chamfer``;
``terminated`` is always False (episodes end by the time limit).

Observation: ``pixels`` uint8 ``(S, S, 3)`` drawn directly at ``image_size`` with OpenCV
(anti-aliased, sub-pixel), and ``proprio`` float32 ``(2,)``: the board's position (where
the last stroke ended; parked at ``PARK`` before the first) in table units.

State: float64 ``(2 N + 3,)`` named by ``state_labels``: ``p000_x, p000_y, ...`` for the N
discs, then ``pusher_x, pusher_y, pusher_angle`` (angle of the last stroke's direction).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pymunk
from gymnasium import spaces
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from sims.base import SHIFT, WorldEnv, check_action, fill_circle, fill_polygon, to_fixed

Obs = dict[str, NDArray[Any]]
SubstepHook = Callable[[NDArray[np.float64], NDArray[np.float64]], None]

TABLE_HALF = 3.0
"""Half side of the square table (table units); a rigid rim runs along its edge."""
REACH = 2.6
"""Strokes start and end in ``[-REACH, REACH]^2``: world = ``REACH * action``."""
PILE_WIDTH = 2.2
"""Side of the square the pile fills at reset, before its random rotation and stretch."""
BOARD_LENGTH = 1.0
"""Length of the pusher board (across the stroke)."""
BOARD_RADIUS = 0.1
"""Half-thickness of the board (the segment's radius)."""
DT = 0.01
"""Physics substep (s)."""
STROKE_STEP = 0.04
"""Board travel per substep (table units): speed ``STROKE_STEP / DT`` = 4 units/s."""
SETTLE_STEPS = 10
"""Substeps after the board is lifted."""
RETAIN = 0.5
"""Fraction of its velocity a disc keeps per substep (friction with the table)."""
SOLVER_ITERATIONS = 10
"""pymunk solver iterations per substep."""
OVERLAP_FIX = 0.3
"""Fraction of an overlap between shapes the solver removes per substep."""
PILE_MASS = 100.0
"""Total mass of the discs (each has ``PILE_MASS / N``)."""
BOARD_MASS = 20.0
"""Mass of the board."""
BOARD_FORCE = 2.0e4
"""Largest force the drive exerts on the board: it stalls rather than crush discs."""
SUCCESS_CHAMFER = 0.25
"""Success threshold on the Chamfer distance (table units)."""
GOAL_SCALE = (0.6, 0.9)
"""Default goals: the start scaled about its centroid by a factor drawn in this range."""
GOAL_SHIFT = 1.0
"""Default goals: then shifted by ``(±d, ±d)``, ``|d| <= GOAL_SHIFT``."""
PARK = (0.0, -REACH, math.pi / 2)
"""Board pose ``(x, y, angle)`` at reset, before the first stroke."""
MIN_PARTICLES, MAX_PARTICLES = 16, 1000
OPTION_KEYS = frozenset({"state", "goal_state"})

_TABLE_COLOR = (222, 214, 198)
_DISC_COLOR = (140, 82, 38)
_GOAL_COLOR = (170, 205, 170)
_BOARD_COLOR = (55, 60, 72)


def disc_radius(n_particles: int) -> float:
    """Disc radius for a pile of ``n_particles`` (the pile's width stays ``PILE_WIDTH``)."""
    return 0.4 * PILE_WIDTH / math.sqrt(n_particles)


def chamfer_distance(a: NDArray[np.floating], b: NDArray[np.floating]) -> float:
    """Chamfer distance between point sets ``a (N, 2)`` and ``b (M, 2)``.

    Mean distance from each point of ``a`` to its nearest point of ``b``, plus the same
    from ``b`` to ``a`` (DINO-WM's definition); symmetric, zero for equal sets.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != 2 or b.shape[1] != 2 or not len(a) * len(b):
        raise ValueError(
            f"point sets must be (N, 2) and (M, 2), N, M > 0; got {a.shape}, {b.shape}"
        )
    d_ab, _ = cKDTree(b).query(a)  # (N,)
    d_ba, _ = cKDTree(a).query(b)  # (M,)
    return float(np.mean(d_ab) + np.mean(d_ba))


def sample_pile(rng: np.random.Generator, n_particles: int) -> NDArray[np.float64]:
    """A jittered square pile of ``n_particles`` discs near the table centre, ``(N, 2)``.

    A ``k x k`` grid (``k = ceil(sqrt(N))``, N random cells kept) over ``PILE_WIDTH``,
    stretched by an aspect ratio in ``[0.8, 1.25]``, jittered without overlap, rotated by
    a random angle and shifted by up to 0.2.
    """
    k = math.ceil(math.sqrt(n_particles))
    spacing = PILE_WIDTH / k
    cells = rng.choice(k * k, size=n_particles, replace=False)
    grid = np.stack([cells % k, cells // k], axis=1) * spacing  # (N, 2)
    grid -= grid.mean(axis=0)
    aspect = math.exp(rng.uniform(math.log(0.8), math.log(1.25)))
    stretch = np.array([math.sqrt(aspect), 1.0 / math.sqrt(aspect)])
    slack = spacing * min(stretch) - 2.0 * disc_radius(n_particles)
    jitter = rng.uniform(-0.45 * slack, 0.45 * slack, size=(n_particles, 2))
    angle = rng.uniform(-math.pi, math.pi)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    local = grid * stretch + jitter  # (N, 2)
    return np.asarray(local @ rot.T + rng.uniform(-0.2, 0.2, size=2), dtype=np.float64)


def gather_goal(
    rng: np.random.Generator, start: NDArray[np.float64], radius: float
) -> NDArray[np.float64]:
    """DINO-WM's goal rule: ``start (N, 2)`` scaled about its centroid, shifted, clamped."""
    scale = rng.uniform(*GOAL_SCALE)
    d = rng.uniform(-GOAL_SHIFT, GOAL_SHIFT)
    shift = d * rng.choice([-1.0, 1.0], size=2)
    centre = start.mean(axis=0)
    goal = centre + scale * (start - centre) + shift
    limit = TABLE_HALF - radius
    return np.asarray(np.clip(goal, -limit, limit), dtype=np.float64)


_RIM = pymunk.ShapeFilter(categories=0b10)
_BOARD = pymunk.ShapeFilter(categories=0b100, mask=pymunk.ShapeFilter.ALL_MASKS() ^ 0b10)


def _new_space(radius: float) -> pymunk.Space:
    """An empty pymunk world with the table's rim."""
    space = pymunk.Space()
    space.iterations = SOLVER_ITERATIONS
    space.damping = RETAIN ** (1.0 / DT)  # pymunk applies damping ** dt per substep
    space.collision_slop = 0.02 * radius
    space.collision_bias = (1.0 - OVERLAP_FIX) ** (1.0 / DT)  # pymunk: error left per second
    t, w = TABLE_HALF, TABLE_HALF + 1.0
    for x0, y0, x1, y1 in ((-w, t, w, w), (-w, -w, w, -t), (-w, -w, -t, w), (t, -w, w, w)):
        rim = pymunk.Poly(space.static_body, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
        rim.friction = 0.5
        rim.filter = _RIM
        space.add(rim)
    return space


class DiscPool:
    """The pymunk discs (bodies and shapes) of ``n`` discs of one radius, made once.

    Making pymunk objects costs about as much as simulating a short stroke, so an env
    keeps one pool: each stroke puts the discs, at rest, into a fresh world and takes them
    out after. Their solver state is flushed on the way in (a zero-length position
    update clears the bias velocities the contact solver leaves on a body), so a stroke
    gives bit for bit what new objects would.
    """

    def __init__(self, n: int, radius: float) -> None:
        mass = PILE_MASS / n
        moment = pymunk.moment_for_circle(mass, 0.0, radius)
        self.n = n
        self.radius = radius
        self.bodies = [pymunk.Body(mass, moment) for _ in range(n)]
        self._items: list[Any] = []
        for body in self.bodies:
            disc = pymunk.Circle(body, radius)
            disc.friction = 0.5
            self._items += (body, disc)

    def space_with(self, particles: NDArray[np.float64]) -> pymunk.Space:
        """A fresh world holding the discs at rest at ``particles (N, 2)``."""
        if particles.shape != (self.n, 2):
            raise ValueError(f"particles must be ({self.n}, 2), got {particles.shape}")
        for body, (x, y) in zip(self.bodies, particles.tolist(), strict=True):
            body.velocity = (0.0, 0.0)
            body.angular_velocity = 0.0
            pymunk.Body.update_position(body, 0.0)  # clears the solver's bias velocities
            body.angle = 0.0
            body.position = (x, y)
        space = _new_space(self.radius)
        space.add(*self._items)
        return space

    def release(self, space: pymunk.Space) -> None:
        """Take the discs out of ``space`` so that the next stroke can use them."""
        space.remove(*self._items)


def _add_board(
    space: pymunk.Space, start: NDArray[np.float64], angle: float
) -> tuple[pymunk.Body, pymunk.Body]:
    """Lower the board at ``start``: a driven target and the force-limited board on it."""
    target = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
    board = pymunk.Body(BOARD_MASS, math.inf)  # never rotates
    board.velocity_func = _undamped
    for body in (target, board):
        body.position = (float(start[0]), float(start[1]))
        body.angle = angle
    half = BOARD_LENGTH / 2
    edge = pymunk.Segment(board, (0.0, -half), (0.0, half), BOARD_RADIUS)
    edge.friction = 0.5
    edge.filter = _BOARD  # passes over the rim
    drive = pymunk.PivotJoint(target, board, (0.0, 0.0), (0.0, 0.0))
    drive.max_force = BOARD_FORCE
    space.add(target, board, edge, drive)
    return target, board


def _undamped(body: pymunk.Body, gravity: Any, damping: float, dt: float) -> None:
    """The board's velocity update: the table's friction does not slow the drive."""
    del damping
    pymunk.Body.update_velocity(body, gravity, 1.0, dt)


def push_stroke(
    particles: NDArray[np.float64],
    start: NDArray[np.float64],
    end: NDArray[np.float64],
    radius: float,
    *,
    on_substep: SubstepHook | None = None,
    pool: DiscPool | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Simulate one stroke of the board from ``start`` to ``end`` (table units).

    A pure function: the discs at ``particles (N, 2)`` start at rest.

    Args:
        particles: Disc positions ``(N, 2)``.
        start: Where the board is lowered ``(2,)``.
        end: Where its drive stops ``(2,)``.
        radius: Disc radius.
        on_substep: Called after every substep of the push with the board's position
            ``(2,)`` and the discs' ``(N, 2)`` (for inspecting the physics).
        pool: Reusable discs for ``N`` and ``radius`` (made here if None); only speed.

    Returns:
        Where the discs come to rest after the stroke and the settle ``(N, 2)``, and
        where the board was lifted ``(2,)`` (short of ``end`` if it stalled).
    """
    pool = DiscPool(len(particles), radius) if pool is None else pool
    if pool.radius != radius:
        raise ValueError(f"pool is for discs of radius {pool.radius}, got {radius}")
    space = pool.space_with(particles)
    try:
        lifted = _drive_board(space, pool.bodies, start, end, on_substep)
        for _ in range(SETTLE_STEPS):
            space.step(DT)
        return _positions(pool.bodies), lifted
    finally:
        pool.release(space)


def _drive_board(
    space: pymunk.Space,
    bodies: list[pymunk.Body],
    start: NDArray[np.float64],
    end: NDArray[np.float64],
    on_substep: SubstepHook | None,
) -> NDArray[np.float64]:
    """Lower the board at ``start``, drive it to ``end`` and lift it; where it was lifted."""
    delta = end - start
    length = float(np.hypot(*delta))
    n_sub = max(1, math.ceil(length / STROKE_STEP))
    target, board = _add_board(space, start, math.atan2(delta[1], delta[0]))
    target.velocity = (float(delta[0]) / (n_sub * DT), float(delta[1]) / (n_sub * DT))
    board.velocity = target.velocity
    for _ in range(n_sub):
        space.step(DT)
        if on_substep is not None:
            on_substep(np.array(tuple(board.position)), _positions(bodies))
    lifted = np.array(tuple(board.position), dtype=np.float64)
    space.remove(*board.shapes, board, *board.constraints, target)
    return lifted


def _positions(bodies: list[pymunk.Body]) -> NDArray[np.float64]:
    """Positions ``(N, 2)`` of ``bodies``."""
    return np.array([tuple(b.position) for b in bodies], dtype=np.float64)


class GranularEnv(WorldEnv):
    """Discs on a table pushed by straight board strokes (see the module docstring)."""

    metric_name = "chamfer"

    def __init__(
        self,
        n_particles: int = 100,
        image_size: int = 224,
        render_mode: str | None = "rgb_array",
        draw_goal: bool = False,
        render_pixels: bool = True,
    ) -> None:
        """Build the env.

        Args:
            n_particles: Number of discs, fixed for the instance (16 to 1000; DINO-WM ~97).
            image_size: Side of the square rendered image in pixels (>= 16).
            render_mode: ``"rgb_array"`` (the only mode) or None.
            draw_goal: Draw the goal's discs faintly under the current ones.
            render_pixels: If False, ``pixels`` is a black frame (fast state-only runs).
        """
        if not isinstance(n_particles, int) or not MIN_PARTICLES <= n_particles <= MAX_PARTICLES:
            raise ValueError(
                f"n_particles must be an int in [{MIN_PARTICLES}, {MAX_PARTICLES}], "
                f"got {n_particles!r}"
            )
        if not isinstance(image_size, int) or image_size < 16:
            raise ValueError(f"image_size must be an int >= 16, got {image_size!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.n_particles = n_particles
        self.image_size = image_size
        self.render_mode = render_mode
        self.draw_goal = bool(draw_goal)
        self.render_pixels = bool(render_pixels)
        self.radius = disc_radius(n_particles)
        digits = max(3, len(str(n_particles - 1)))
        self.state_labels = (
            *(f"p{i:0{digits}d}_{c}" for i in range(n_particles) for c in "xy"),
            "pusher_x",
            "pusher_y",
            "pusher_angle",
        )
        self._action_box = spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.action_space = self._action_box
        self.observation_space = spaces.Dict(  # type: ignore[assignment]
            {
                "pixels": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
                "proprio": spaces.Box(-TABLE_HALF, TABLE_HALF, (2,), np.float32),
            }
        )
        self._pool: DiscPool | None = None  # made on the first stroke; never pickled
        pile = sample_pile(np.random.default_rng(0), n_particles)
        self._state = _pack(pile, PARK)
        self._goal = _pack(gather_goal(np.random.default_rng(1), pile, self.radius), PARK)

    # ----------------------------------------------------------------- state helpers

    @property
    def goal_state(self) -> NDArray[np.float64]:
        """The goal state (goal particles and the parked board)."""
        return self._goal.copy()

    def get_state(self) -> NDArray[np.float64]:
        """The state vector ``(2 N + 3,)``: disc positions, then the board pose."""
        return self._state.copy()

    def set_state(self, state: NDArray[np.floating]) -> None:
        """Put discs and board at ``state`` (velocities are zero between strokes)."""
        self._state = self._validated(state, "state")

    @staticmethod
    def particles(state: NDArray[np.floating]) -> NDArray[np.float64]:
        """The disc positions ``(N, 2)`` of a state vector ``(2 N + 3,)``."""
        s = np.asarray(state, dtype=np.float64)
        return s[:-3].reshape(-1, 2)

    @staticmethod
    def summary(state: NDArray[np.floating]) -> tuple[float, float, float]:
        """Centroid and spread (RMS distance to the centroid) of a state's discs."""
        p = GranularEnv.particles(state)
        c = p.mean(axis=0)
        spread = math.sqrt(float(np.mean(np.sum((p - c) ** 2, axis=1))))
        return float(c[0]), float(c[1]), spread

    @staticmethod
    def action_to_stroke(action: NDArray[np.floating]) -> tuple[NDArray[np.float64], ...]:
        """Stroke start and end in table units for a normalised action ``(4,)``."""
        a = np.asarray(action, dtype=np.float64) * REACH
        return a[:2], a[2:]

    @staticmethod
    def stroke_to_action(
        start: NDArray[np.floating], end: NDArray[np.floating]
    ) -> NDArray[np.float32]:
        """The normalised action for a stroke in table units, clipped into the box."""
        a = np.concatenate([np.asarray(start), np.asarray(end)]).astype(np.float64) / REACH
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def evaluate_state(
        self, state: NDArray[np.floating], goal: NDArray[np.floating]
    ) -> dict[str, float | bool]:
        """Chamfer distance between the discs of ``state`` and ``goal``, and success."""
        s = self._validated(state, "state")
        g = self._validated(goal, "goal")
        chamfer = chamfer_distance(self.particles(s), self.particles(g))
        return {"is_success": chamfer < SUCCESS_CHAMFER, "chamfer": chamfer}

    # ----------------------------------------------------------------- gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Obs, dict[str, Any]]:
        """Start an episode; ``options`` may hold ``state`` and ``goal_state`` vectors."""
        super().reset(seed=seed)
        opts = dict(options or {})
        unknown = set(opts) - OPTION_KEYS
        if unknown:
            raise ValueError(
                f"unknown reset options {sorted(unknown)}; known: {sorted(OPTION_KEYS)}"
            )
        start = _pack(sample_pile(self.np_random, self.n_particles), PARK)
        if opts.get("state") is not None:
            start = self._validated(opts["state"], "state")
        if opts.get("goal_state") is not None:
            goal = self._validated(opts["goal_state"], "goal_state")
        else:
            goal = self._sample_goal(start)
        self._state, self._goal = start, goal
        return self._observation(), self._info(clipped=False)

    def step(self, action: NDArray[np.float32]) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        """Push one stroke (see the module docstring for the action rules)."""
        checked = check_action(action, self._action_box)
        start, end = self.action_to_stroke(checked.value)
        if self._pool is None:
            self._pool = DiscPool(self.n_particles, self.radius)
        moved, lifted = push_stroke(
            self.particles(self._state), start, end, self.radius, pool=self._pool
        )
        delta = end - start
        angle = math.atan2(delta[1], delta[0]) if np.any(delta != 0) else self._state[-1]
        self._state = _pack(moved, (float(lifted[0]), float(lifted[1]), float(angle)))
        info = self._info(clipped=checked.clipped)
        return self._observation(), -float(info["chamfer"]), False, False, info

    def render(self) -> NDArray[np.uint8]:
        """The current frame, uint8 ``(image_size, image_size, 3)``."""
        return self.render_state(self._state)

    def render_state(self, state: NDArray[np.floating]) -> NDArray[np.uint8]:
        """Draw ``state`` (with the goal's discs faintly if ``draw_goal``)."""
        s = self._validated(state, "state")
        size = self.image_size
        img = np.empty((size, size, 3), dtype=np.uint8)
        img[:] = _TABLE_COLOR
        scale = size / (2 * TABLE_HALF)
        r_px = self.radius * scale
        if self.draw_goal:
            _fill_discs(img, self._to_pixels(self.particles(self._goal)), r_px, _GOAL_COLOR)
        _fill_discs(img, self._to_pixels(self.particles(s)), r_px, _DISC_COLOR)
        self._draw_board(img, s[-3:])
        return img

    def __getstate__(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data["_pool"] = None  # pymunk objects stay out of pickles; remade on demand
        return data

    # ----------------------------------------------------------------- internals

    def _to_pixels(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """Table units ``(K, 2)`` to float pixel coordinates ``(K, 2)``."""
        scale = self.image_size / (2 * TABLE_HALF)
        return np.stack([points[:, 0] + TABLE_HALF, TABLE_HALF - points[:, 1]], axis=1) * scale

    def _draw_board(self, img: NDArray[np.uint8], pose: NDArray[np.float64]) -> None:
        """Draw the board (a rectangle with round ends) at ``pose (x, y, angle)``."""
        x, y, angle = pose.tolist()
        across = np.array([-math.sin(angle), math.cos(angle)]) * BOARD_LENGTH / 2
        along = np.array([math.cos(angle), math.sin(angle)]) * BOARD_RADIUS
        c = np.array([x, y])
        ends = np.stack([c - across, c + across])  # (2, 2)
        corners = np.stack([ends[0] - along, ends[1] - along, ends[1] + along, ends[0] + along])
        fill_polygon(img, self._to_pixels(corners), _BOARD_COLOR)
        r_px = BOARD_RADIUS * self.image_size / (2 * TABLE_HALF)
        for p in self._to_pixels(ends):
            fill_circle(img, p, r_px, _BOARD_COLOR)

    def _sample_goal(self, start: NDArray[np.float64]) -> NDArray[np.float64]:
        """Draw a goal by DINO-WM's rule until the start does not already succeed."""
        pile = self.particles(start)
        goal = pile
        for _ in range(100):
            goal = gather_goal(self.np_random, pile, self.radius)
            if chamfer_distance(pile, goal) >= SUCCESS_CHAMFER:
                break
        return _pack(goal, PARK)

    def _validated(self, state: object, name: str) -> NDArray[np.float64]:
        """``state`` as a float64 copy, or ``ValueError`` saying what was wrong."""
        arr = np.array(state, dtype=np.float64) if _numeric(state) else None
        n = 2 * self.n_particles + 3
        if arr is None or arr.shape != (n,):
            shape = None if arr is None else arr.shape
            raise ValueError(f"{name} must be a numeric vector of shape ({n},), got {shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
        outside = np.abs(arr[:-3]) > TABLE_HALF
        if np.any(outside):
            raise ValueError(
                f"{name}: disc positions must lie on the table [-{TABLE_HALF}, {TABLE_HALF}]^2, "
                f"{int(outside.sum())} coordinates do not"
            )
        return arr

    def _observation(self) -> Obs:
        proprio = self._state[-3:-1].astype(np.float32)
        if self.render_pixels:
            pixels = self.render_state(self._state)
        else:
            pixels = np.zeros((self.image_size, self.image_size, 3), dtype=np.uint8)
        return {"pixels": pixels, "proprio": proprio}

    def _info(self, clipped: bool) -> dict[str, Any]:
        scores = self.evaluate_state(self._state, self._goal)
        return {**scores, "state": self._state.copy(), "action_clipped": clipped}


def _fill_discs(
    img: NDArray[np.uint8], centres: NDArray[np.float64], radius: float, color: tuple[int, ...]
) -> None:
    """Draw anti-aliased discs at float pixel ``centres (K, 2)`` (as ``fill_circle``, batched)."""
    fixed = to_fixed(centres).tolist()
    r = max(round(radius * (1 << SHIFT)), 1)
    for x, y in fixed:
        cv2.circle(img, (x, y), r, color, -1, cv2.LINE_AA, SHIFT)


def _pack(particles: NDArray[np.float64], pose: tuple[float, float, float]) -> NDArray[np.float64]:
    """State vector from disc positions ``(N, 2)`` and a board pose."""
    return np.concatenate([particles.reshape(-1), np.asarray(pose, dtype=np.float64)])


def _numeric(value: object) -> bool:
    """Whether ``value`` converts to a numeric (not string or object) array."""
    try:
        return np.asarray(value).dtype.kind in "biuf"
    except (TypeError, ValueError):
        return False
