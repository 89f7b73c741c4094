"""pymunk physics of the two maze worlds.

* :class:`PointMassPhysics` (U-maze): D4RL's point mass, a frictionless, inelastic disc of
  radius 0.1 and mass 4.19 (a sphere of density 1000), pushed by a force of
  ``100 * action`` with viscous damping 1, integrated at dt 0.01 with 5 substeps per
  control step; the velocity is clipped to +-5 per axis at the start of each control
  step, as D4RL does. Each 0.01 substep is solved as 4 pymunk steps so that a disc at
  full speed overlaps a wall by at most ~0.015 units before the contact stops it.
* :class:`DotPhysics` (two-room): DINO-WM's dot, ``p' = p + 2 a``; a move that would
  cross a wall stops at the first wall it meets (a pymunk segment query against the
  wall shapes) and is set back 0.5 px from it along the wall's normal.

Both are Markov in (position, velocity): the solver's history is dropped at every
control step, so a copy restored from the state vector steps exactly like the original.
"""

from __future__ import annotations

import math

import numpy as np
import pymunk
from numpy.typing import NDArray

from sims.maze_layouts import MazeLayout

UMAZE_MASS = 4.0 / 3.0 * math.pi * 0.1**3 * 1000.0  # ~4.19, sphere of radius 0.1, density 1000
UMAZE_GEAR = 100.0
UMAZE_DAMPING = 1.0  # N s / m, viscous
UMAZE_DT = 0.01
UMAZE_FRAME_SKIP = 5
UMAZE_SOLVER_SPLIT = 4
UMAZE_MAX_SPEED = 5.0

TWOROOM_STEP = 2.0
TWOROOM_PUSHBACK = 0.5

_ALL = pymunk.ShapeFilter()
_PROBE_MARGIN = 1e-6


def _add_walls(space: pymunk.Space, layout: MazeLayout) -> None:
    for x0, y0, x1, y1 in layout.walls:
        box = pymunk.Poly.create_box_bb(space.static_body, pymunk.BB(x0, y0, x1, y1))
        box.friction = 0.0
        box.elasticity = 0.0
        space.add(box)


class PointMassPhysics:
    """The U-maze point mass on pymunk (see the module docstring for the constants)."""

    def __init__(self, layout: MazeLayout) -> None:
        self.layout = layout
        self.space = pymunk.Space()
        self.space.gravity = (0.0, 0.0)
        # pymunk keeps damping**dt of the velocity per step: exp(-c/m) gives dv/dt = -c v / m.
        self.space.damping = math.exp(-UMAZE_DAMPING / UMAZE_MASS)
        self.space.collision_slop = 1e-4
        self.space.iterations = 10
        _add_walls(self.space, layout)
        self.body = pymunk.Body(UMAZE_MASS, math.inf)
        self.shape = pymunk.Circle(self.body, layout.agent_radius)
        self._respawn((0.0, 0.0), (0.0, 0.0))

    @property
    def position(self) -> NDArray[np.float64]:
        """Agent position ``(2,)`` in maze units."""
        return np.array(self.body.position, dtype=np.float64)

    @property
    def velocity(self) -> NDArray[np.float64]:
        """Agent velocity ``(2,)`` in maze units per second."""
        return np.array(self.body.velocity, dtype=np.float64)

    def set(self, position: NDArray[np.float64], velocity: NDArray[np.float64]) -> None:
        """Place the agent (the caller checks that the position is free)."""
        self._respawn(
            (float(position[0]), float(position[1])), (float(velocity[0]), float(velocity[1]))
        )

    def advance(self, action: NDArray[np.float64]) -> None:
        """One control step (0.05 s) under a validated action in ``[-1, 1]^2``."""
        vx, vy = self.body.velocity
        clipped = (
            min(max(vx, -UMAZE_MAX_SPEED), UMAZE_MAX_SPEED),
            min(max(vy, -UMAZE_MAX_SPEED), UMAZE_MAX_SPEED),
        )
        px, py = self.body.position
        self._respawn((px, py), clipped)
        # The agent is the only dynamic body, so its force F acts as the space's uniform
        # acceleration F / m (set once instead of re-applying body.force every substep).
        per_mass = UMAZE_GEAR / UMAZE_MASS
        self.space.gravity = (per_mass * float(action[0]), per_mass * float(action[1]))
        dt = UMAZE_DT / UMAZE_SOLVER_SPLIT
        for _ in range(UMAZE_FRAME_SKIP * UMAZE_SOLVER_SPLIT):
            self.space.step(dt)

    def _respawn(self, position: tuple[float, float], velocity: tuple[float, float]) -> None:
        # A new body and shape carry no solver history: cached contact impulses (warm
        # starting) and the bias velocity of the last substep would otherwise make the
        # next step depend on more than the state vector.
        if self.body.space is not None:
            self.space.remove(self.body, self.shape)
        self.body = pymunk.Body(UMAZE_MASS, math.inf)
        self.body.position = position
        self.body.velocity = velocity
        self.shape = pymunk.Circle(self.body, self.layout.agent_radius)
        self.shape.friction = 0.0
        self.shape.elasticity = 0.0
        self.space.add(self.body, self.shape)


class DotPhysics:
    """The two-room dot: kinematic moves of ``2 * action`` px, stopped by the walls."""

    def __init__(self, layout: MazeLayout) -> None:
        self.layout = layout
        self.space = pymunk.Space()
        _add_walls(self.space, layout)
        self._position = np.zeros(2)
        self._velocity = np.zeros(2)

    @property
    def position(self) -> NDArray[np.float64]:
        """Dot position ``(2,)`` in px."""
        return self._position.copy()

    @property
    def velocity(self) -> NDArray[np.float64]:
        """Last displacement ``(2,)`` in px per step."""
        return self._velocity.copy()

    def set(self, position: NDArray[np.float64], velocity: NDArray[np.float64]) -> None:
        """Place the dot (the caller checks that the position is free)."""
        self._position = np.array(position[:2], dtype=np.float64)
        self._velocity = np.array(velocity[:2], dtype=np.float64)

    def advance(self, action: NDArray[np.float64]) -> None:
        """One step: move by ``2 * action`` px, or stop 0.5 px before the first wall hit."""
        start = self._position
        new = self._resolve(start, start + TWOROOM_STEP * action)
        self._velocity = new - start
        self._position = new

    def _clear(self, a: NDArray[np.float64], b: NDArray[np.float64]) -> bool:
        if not self.layout.is_free(float(b[0]), float(b[1])):
            return False
        if np.array_equal(a, b):
            return True
        return self.space.segment_query_first(tuple(a), tuple(b), 0.0, _ALL) is None

    def _resolve(self, start: NDArray[np.float64], end: NDArray[np.float64]) -> NDArray[np.float64]:
        if self._clear(start, end):
            return end
        direction = (end - start) / max(float(np.linalg.norm(end - start)), 1e-12)
        # Probe a hair past the end so that a move ending exactly on a wall face hits it.
        probe = end + _PROBE_MARGIN * direction
        hit = self.space.segment_query_first(tuple(start), tuple(probe), 0.0, _ALL)
        if hit is not None:
            contact = np.array(hit.point, dtype=np.float64)
            normal = np.array(hit.normal, dtype=np.float64)
            for candidate in (
                contact + TWOROOM_PUSHBACK * normal,
                contact - TWOROOM_PUSHBACK * direction,
            ):
                if self._clear(start, candidate):
                    return candidate
        return start.copy()
