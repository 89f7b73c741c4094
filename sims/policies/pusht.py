"""Data-collection policies for push-T.

* :class:`ScriptedPolicy` walks the pusher around the T (never through it) to
  a point just off its outline, then pushes into it: half of the pushes are
  chosen to bring the T toward the goal pose, half in random directions at
  random points, with random speeds and lengths; a push stops before it would
  jam the T against a wall. The result is contact-rich (the T moves in about a
  third of the steps), covers translations and rotations in every direction,
  and in most 300-step episodes brings the T over half onto the goal at some
  point, without solving the task outright.
* :class:`RandomPolicy` draws temporally correlated actions (an
  Ornstein-Uhlenbeck-like process with a weak pull toward the middle of the
  workspace, so the pusher does not stick to a wall).

Both read the privileged simulator state through ``env.unwrapped``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from sims.pusht import (
    ACTION_SCALE,
    AGENT_RADIUS,
    T_BOXES,
    T_OUTLINE,
    T_RADIUS,
    WORKSPACE,
    PushTEnv,
    agent_block_distance,
    block_centroid,
    local_to_world,
    world_to_local,
)

# Circling the T's centroid at this radius never touches the T.
_CLEAR_RADIUS = T_RADIUS + AGENT_RADIUS + 12.0
_STANDOFF = AGENT_RADIUS + 6.0  # where the pusher waits before a push, off the outline
_REACHED = 5.0  # px: the push start counts as reached
_PASSED = 25.0  # px: a waypoint on the way counts as passed
_MAX_APPROACH_STEPS = 40
_WALL_KEEPOUT = 100.0  # px: random pushes avoid carrying the T's centroid this close to a wall
_WALL_FACE = 7.0  # px: the walls' inner faces are this far inside the workspace edges
_WALL_GAP = 15.0  # px: a push stops when the T comes this close to a wall it is pushed toward


def _unwrap(env: gym.Env[Any, Any]) -> PushTEnv:
    inner = env.unwrapped
    if not isinstance(inner, PushTEnv):
        raise TypeError(f"push-T policies need a PushTEnv, got {type(inner).__name__}")
    return inner


def _outline_edges() -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Edge starts (E, 2), edge vectors (E, 2) and outward normals (E, 2) of the T outline."""
    starts = T_OUTLINE
    vecs = np.roll(T_OUTLINE, -1, axis=0) - T_OUTLINE
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    # With y pointing down the outline runs clockwise on screen; outward is (u_y, -u_x).
    normals = np.stack([unit[:, 1], -unit[:, 0]], axis=1)
    return starts, vecs, normals


_EDGE_STARTS, _EDGE_VECS, _EDGE_NORMALS = _outline_edges()
_EDGE_LENGTHS = np.linalg.norm(_EDGE_VECS, axis=1)


def _action_toward(agent: NDArray[np.float64], point: NDArray[np.float64], speed: float) -> Any:
    """The relative action whose target is ``point``, no longer than ``speed``."""
    a = (point - agent) / ACTION_SCALE
    norm = float(np.linalg.norm(a))
    if norm > speed:
        a = a * (speed / norm)
    return a


class ScriptedPolicy:
    """Walk around the T to a contact point, then push; repeat (see module docstring).

    Args:
        env: A push-T env (wrapped or not).
        goal_fraction: Share of pushes chosen to bring the T toward the goal.
        noise: Standard deviation of the Gaussian noise added to every action.
        speed: Largest action norm: the pusher approaches at ``speed`` and pushes at
            ``U(0.15, 0.6) * speed``. 1.0 spans the action box; about 0.3 gives
            DINO-WM's dataset statistics (action std ~0.2 per axis), the pace of its
            evaluation goals. A ``(low, high)`` pair draws the pace of each episode
            uniformly from that range at :meth:`reset` (diverse training data).
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        goal_fraction: float = 0.5,
        noise: float = 0.05,
        speed: float | Sequence[float] = 1.0,
    ) -> None:
        if not 0.0 <= goal_fraction <= 1.0:
            raise ValueError(f"goal_fraction must be in [0, 1], got {goal_fraction}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        pace = [speed] * 2 if isinstance(speed, int | float) else list(speed)
        if len(pace) != 2 or not all(isinstance(v, int | float) for v in pace):
            raise ValueError(f"speed must be a number or a (low, high) pair, got {speed!r}")
        low, high = pace
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"speed must be in (0, 1] or a (low, high) range in it, got {speed}")
        self._env = _unwrap(env)
        self.goal_fraction = goal_fraction
        self.noise = noise
        self.speed_range = (float(low), float(high))
        self.speed = float(low)
        self.reset(None)

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; ``seed`` makes the policy's choices repeatable."""
        self._rng = np.random.default_rng(seed)
        low, high = self.speed_range
        self.speed = float(self._rng.uniform(low, high)) if high > low else low
        self._waypoints: list[NDArray[np.float64]] = []
        self._approach_steps = 0
        self._push_dir = np.zeros(2)
        self._push_steps = 0
        self._push_speed = 0.0

    def __call__(self, obs: dict[str, NDArray[Any]], info: dict[str, Any]) -> NDArray[np.float32]:
        """Return the next action (relative displacement in [-1, 1]^2)."""
        state = self._env.get_state()
        agent = state[:2]
        if self._push_steps <= 0 and not self._waypoints:
            self._plan(state)
        if self._waypoints:
            a = self._approach(agent)
        elif _toward_wall(state, self._push_dir):  # stop before jamming the T into a wall
            self._push_steps = 0
            a = np.zeros(2)
        else:
            self._push_steps -= 1
            a = self._push_dir * self._push_speed
        a = a + self._rng.normal(0.0, self.noise, size=2)
        action: NDArray[np.float32] = np.clip(a, -1.0, 1.0).astype(np.float32)
        return action

    def _approach(self, agent: NDArray[np.float64]) -> Any:
        self._approach_steps += 1
        while self._waypoints:
            last = len(self._waypoints) == 1
            if np.linalg.norm(self._waypoints[0] - agent) >= (_REACHED if last else _PASSED):
                break
            self._waypoints.pop(0)
        if self._approach_steps > _MAX_APPROACH_STEPS / self.speed:  # stuck (e.g. T against a wall)
            self._waypoints = []
            self._push_steps = 0
            return self._rng.uniform(-0.5, 0.5, size=2)
        if not self._waypoints:
            return self._push_dir * self._push_speed
        return _action_toward(agent, self._waypoints[0], speed=self.speed)

    def _plan(self, state: NDArray[np.float64]) -> None:
        """Choose the next push and a clear path to its start, or back off from the T."""
        pose = (float(state[2]), float(state[3]), float(state[4]))
        self._approach_steps = 0
        self._push_speed = float(self._rng.uniform(0.15, 0.6)) * self.speed
        self._push_steps = int(self._rng.integers(4, 16))
        for _ in range(8):
            toward_goal = self._rng.random() < self.goal_fraction
            point, normal, direction = (
                self._goal_push(state) if toward_goal else self._random_push(pose)
            )
            path = _path(state[:2], point + normal * _STANDOFF, pose)
            if path is not None:
                self._waypoints, self._push_dir = path, direction
                return
        # Boxed in (the T against a wall, the pusher beside it): step away and retry.
        away = state[:2] - block_centroid(pose)
        away = away / max(float(np.linalg.norm(away)), 1e-9)
        self._waypoints = [np.clip(state[:2] + 40.0 * away, AGENT_RADIUS, WORKSPACE - AGENT_RADIUS)]
        self._push_dir, self._push_steps = np.zeros(2), 0

    def _contact(self, pose: tuple[float, float, float]) -> tuple[Any, Any]:
        """A random point on the T's outline with room for the pusher, and its outward normal."""
        c, s = math.cos(pose[2]), math.sin(pose[2])
        weights = _EDGE_LENGTHS / _EDGE_LENGTHS.sum()
        for _ in range(20):
            edge = int(self._rng.choice(len(_EDGE_LENGTHS), p=weights))
            local = _EDGE_STARTS[edge] + self._rng.uniform(0.05, 0.95) * _EDGE_VECS[edge]
            point = local_to_world(local[None], pose)[0]
            n = _EDGE_NORMALS[edge]
            normal = np.array([c * n[0] - s * n[1], s * n[0] + c * n[1]])
            start = point + normal * _STANDOFF
            inside = bool(np.all((start > AGENT_RADIUS) & (start < WORKSPACE - AGENT_RADIUS)))
            if inside and agent_block_distance(start, pose) > AGENT_RADIUS + 1.0:
                break
        return point, normal

    def _random_push(self, pose: tuple[float, float, float]) -> tuple[Any, Any, Any]:
        """A push at a random point, roughly along the inward normal.

        Pushes that would carry the T's centroid close to a wall are redrawn, so
        that the data are not dominated by a T jammed against the walls.
        """
        centroid = block_centroid(pose)
        for _ in range(10):
            point, normal = self._contact(pose)
            jitter = self._rng.uniform(-0.6, 0.6)
            c, s = math.cos(jitter), math.sin(jitter)
            direction = -np.array([c * normal[0] - s * normal[1], s * normal[0] + c * normal[1]])
            ahead = centroid + 60.0 * direction
            if np.all((ahead > _WALL_KEEPOUT) & (ahead < WORKSPACE - _WALL_KEEPOUT)):
                break
        return point, normal, direction

    def _goal_push(self, state: NDArray[np.float64]) -> tuple[Any, Any, Any]:
        """Among random candidates, the push whose rough effect best approaches the goal."""
        pose = (float(state[2]), float(state[3]), float(state[4]))
        goal = self._env.goal_state
        goal_pose = (float(goal[2]), float(goal[3]), float(goal[4]))
        centroid = block_centroid(pose)
        shift = block_centroid(goal_pose) - centroid
        turn = math.remainder(goal_pose[2] - pose[2], 2 * math.pi)
        best: tuple[float, tuple[Any, Any, Any]] | None = None
        for _ in range(24):
            point, normal, direction = self._random_push(pose)
            arm = point - centroid
            torque = arm[0] * direction[1] - arm[1] * direction[0]  # > 0 turns the angle up
            # Expected progress: translation along the needed shift, rotation toward the goal.
            score = float(direction @ shift) + 60.0 * turn * torque / 80.0
            if best is None or score > best[0]:
                best = (score, (point, normal, direction))
        assert best is not None
        return best[1]


def _toward_wall(state: NDArray[np.float64], direction: NDArray[np.float64]) -> bool:
    """Whether pushing along ``direction`` would press the T against a wall."""
    corners = local_to_world(T_OUTLINE, (float(state[2]), float(state[3]), float(state[4])))
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    near_lo = (lo < _WALL_FACE + _WALL_GAP) & (direction < -0.1)
    near_hi = (hi > WORKSPACE - _WALL_FACE - _WALL_GAP) & (direction > 0.1)
    return bool(np.any(near_lo | near_hi))


def _path(
    agent: NDArray[np.float64], start: NDArray[np.float64], pose: tuple[float, float, float]
) -> list[NDArray[np.float64]] | None:
    """Waypoints from ``agent`` to ``start`` that keep clear of the T, or None.

    Straight if that is clear; otherwise around the T on a circle about its
    centroid, the short way round or else the long way. Near a wall that circle
    is cut off by the workspace, and neither way may be clear.
    """
    if _clear(np.stack([agent, start]), pose):
        return [start]
    centroid = block_centroid(pose)
    a0 = math.atan2(agent[1] - centroid[1], agent[0] - centroid[0])
    a1 = math.atan2(start[1] - centroid[1], start[0] - centroid[0])
    short = math.remainder(a1 - a0, 2 * math.pi)
    for sweep in (short, short - math.copysign(2 * math.pi, short)):
        n = max(1, math.ceil(abs(sweep) / (math.pi / 6)))
        angles = a0 + sweep * np.arange(n + 1) / n
        ring = centroid + _CLEAR_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        ring = np.clip(ring, AGENT_RADIUS, WORKSPACE - AGENT_RADIUS)
        if _clear(np.concatenate([agent[None], ring, start[None]]), pose):
            return [*ring, start]
    return None


def _clear(path: NDArray[np.float64], pose: tuple[float, float, float]) -> bool:
    """Whether the pusher can follow the polyline ``path`` (K, 2) without touching the T."""
    points = [path[:1]]
    for a, b in itertools.pairwise(path):
        n = max(2, int(np.linalg.norm(b - a) / 4.0) + 1)
        points.append(a + np.linspace(0.0, 1.0, n)[:, None] * (b - a))
    local = world_to_local(np.concatenate(points), pose)  # (P, 2)
    best = np.full(len(local), np.inf)
    for x0, y0, x1, y1 in T_BOXES:
        dx = np.maximum(np.maximum(x0 - local[:, 0], local[:, 0] - x1), 0.0)
        dy = np.maximum(np.maximum(y0 - local[:, 1], local[:, 1] - y1), 0.0)
        best = np.minimum(best, np.hypot(dx, dy))
    return bool(best.min() > AGENT_RADIUS + 2.0)


class RandomPolicy:
    """Temporally correlated random actions.

    ``a_t = rho a_{t-1} + sqrt(1 - rho^2) sigma eps_t + pull``, clipped to the
    action box, where ``pull`` draws the pusher gently toward the middle of the
    workspace once it is within ``margin`` px of an edge.

    Args:
        env: A push-T env (wrapped or not).
        rho: Correlation between consecutive actions.
        sigma: Stationary standard deviation of each action component.
        margin: Distance from the workspace edge where the pull starts (px).
    """

    def __init__(
        self, env: gym.Env[Any, Any], rho: float = 0.8, sigma: float = 0.4, margin: float = 60.0
    ) -> None:
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {rho}")
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self._env = _unwrap(env)
        self.rho, self.sigma, self.margin = rho, sigma, margin
        self.reset(None)

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; ``seed`` makes the action sequence repeatable."""
        self._rng = np.random.default_rng(seed)
        self._last = self._rng.normal(0.0, self.sigma, size=2)

    def __call__(self, obs: dict[str, NDArray[Any]], info: dict[str, Any]) -> NDArray[np.float32]:
        """Return the next action."""
        agent = self._env.get_state()[:2]
        eps = self._rng.normal(0.0, 1.0, size=2)
        a = self.rho * self._last + math.sqrt(1.0 - self.rho**2) * self.sigma * eps
        low = np.maximum(self.margin - agent, 0.0)
        high = np.maximum(agent - (WORKSPACE - self.margin), 0.0)
        a = a + (low - high) / ACTION_SCALE
        self._last = np.clip(a, -1.0, 1.0)
        action: NDArray[np.float32] = self._last.astype(np.float32)
        return action
