"""Data-collection policies for ``worldplan/Granular-v0``.

Both read the privileged simulator state (disc positions, and the goal for the scripted
one) and return normalised strokes ``(x_start, y_start, x_end, y_end)`` as float32 inside
the action box.

* :class:`RandomPolicy`: DINO-WM's random strokes (``sample_deform_actions``): a start
  drawn uniformly on the reachable table, clear of every disc, and a stroke through a
  disc picked near the pile's middle that ends ``EXTENSION`` beyond it, inside
  ``[-END_LIMIT, END_LIMIT]^2``.
* :class:`ScriptedPolicy`: gathering strokes: a disc far from the goal's centroid (drawn
  with probability growing with its distance) is pushed from behind toward the centroid,
  stopping inside the goal's spread, with noise on the direction and the stroke ends.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from sims.granular import BOARD_RADIUS, REACH, GranularEnv

EXTENSION = 1.0
"""How far beyond the picked disc a random stroke ends (table units; DINO-WM: 1.0)."""
END_LIMIT = 1.5
"""Random strokes end inside ``[-END_LIMIT, END_LIMIT]^2`` (as DINO-WM, in the same units)."""
MIDDLE_RADIUS = 1.0
"""Random strokes pass through a disc within this distance of the discs' median."""
MAX_TRIES = 200


def _granular(env: gym.Env[Any, Any]) -> GranularEnv:
    inner = env.unwrapped
    if not isinstance(inner, GranularEnv):
        raise TypeError(f"granular policies need a GranularEnv, got {type(inner).__name__}")
    return inner


class RandomPolicy:
    """DINO-WM-style random strokes through a disc near the middle of the pile."""

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        self._env = _granular(env)
        self._rng = np.random.default_rng()

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; ``seed`` makes the strokes repeatable."""
        self._rng = np.random.default_rng(seed)

    def __call__(self, obs: dict[str, NDArray[Any]], info: dict[str, Any]) -> NDArray[np.float32]:
        """A random stroke for the current state (``obs`` and ``info`` are not needed)."""
        del obs, info
        p = self._env.particles(self._env.get_state())  # (N, 2)
        middle = np.median(p, axis=0)
        near = np.flatnonzero(np.linalg.norm(p - middle, axis=1) < MIDDLE_RADIUS)
        if near.size == 0:
            near = np.arange(len(p))
        clearance = 2 * self._env.radius + BOARD_RADIUS
        tree = cKDTree(p)
        for _ in range(MAX_TRIES):
            start = self._rng.uniform(-REACH, REACH, size=2)
            through = p[self._rng.choice(near)]
            direction = through - start
            length = float(np.hypot(*direction))
            if length < 1e-6:
                continue
            end = through + direction / length * EXTENSION
            if np.all(np.abs(end) <= END_LIMIT) and tree.query(start)[0] > clearance:
                return GranularEnv.stroke_to_action(start, end)
        start = self._rng.uniform(-REACH, REACH, size=2)
        return GranularEnv.stroke_to_action(start, middle)


class ScriptedPolicy:
    """Gathering strokes: push far discs toward the goal's centroid (privileged state)."""

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        self._env = _granular(env)
        self._rng = np.random.default_rng()

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; ``seed`` makes the strokes repeatable."""
        self._rng = np.random.default_rng(seed)

    def __call__(self, obs: dict[str, NDArray[Any]], info: dict[str, Any]) -> NDArray[np.float32]:
        """A gathering stroke for the current state and goal."""
        del obs, info
        env = self._env
        p = env.particles(env.get_state())  # (N, 2)
        goal = env.particles(env.goal_state)  # (N, 2)
        centre = goal.mean(axis=0)
        spread = math.sqrt(float(np.mean(np.sum((goal - centre) ** 2, axis=1))))
        dist = np.linalg.norm(p - centre, axis=1)  # (N,)
        weight = np.maximum(dist - 0.5 * spread, 0.0) ** 2
        if weight.sum() <= 0:
            weight = dist**2 + 1e-12
        q = p[self._rng.choice(len(p), p=weight / weight.sum())]
        angle = math.atan2(*(centre - q)[::-1]) + self._rng.normal(0.0, 0.15)
        u = np.array([math.cos(angle), math.sin(angle)])
        behind = env.radius + BOARD_RADIUS + self._rng.uniform(0.05, 0.4)
        start = q - u * behind
        stop = spread * self._rng.uniform(0.2, 0.8) + BOARD_RADIUS + env.radius
        travel = max(float(np.dot(centre - start, u)) - stop, 0.1)
        return GranularEnv.stroke_to_action(start, start + u * travel)
