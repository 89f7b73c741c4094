"""Data-collection policies for ``worldplan/Maze-v0`` (both layouts).

* :class:`ScriptedPolicy` heads for a target through the maze (U-maze: breadth-first
  search over the grid cells, PD control towards the next cell centre; two-room: via
  the door) with temporally correlated action noise. The target is the episode's goal
  with probability ``goal_prob``, otherwise a random free point; on reaching a random
  point it picks the next target the same way, so episodes cover the whole maze.
* :class:`RandomPolicy` draws temporally correlated random actions (an
  Ornstein-Uhlenbeck-like AR(1) process, clipped to the action box).

Both read the privileged simulator state through ``env.unwrapped``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from sims.maze import MazeEnv
from sims.maze_layouts import TWOROOM_WALL_HALF_WIDTH, umaze_free_cells, umaze_path

UMAZE_KP = 1.5  # action per unit of position error
UMAZE_KD = 0.45  # action per unit/s of velocity
UMAZE_REACHED = 0.25  # a random waypoint counts as reached within this distance (units)
TWOROOM_REACHED = 2.0  # px
TWOROOM_DOOR_APPROACH = 4.0  # px from the wall face where the dot lines up with the door
TWOROOM_LINED_UP = 1.5  # px: close enough to the door line to go through


def _maze_env(env: gym.Env[Any, Any]) -> MazeEnv:
    inner = env.unwrapped
    if not isinstance(inner, MazeEnv):
        raise TypeError(f"maze policies need a MazeEnv, got {type(inner).__name__}")
    return inner


class _CorrelatedNoise:
    """AR(1) noise ``n' = rho n + sqrt(1 - rho^2) std eps``: stationary std ``std`` per axis."""

    def __init__(self, rho: float, std: float) -> None:
        self.rho = rho
        self.std = std
        self.value = np.zeros(2)

    def reset(self) -> None:
        self.value = np.zeros(2)

    def __call__(self, rng: np.random.Generator) -> NDArray[np.float64]:
        eps = rng.standard_normal(2)
        self.value = self.rho * self.value + np.sqrt(1.0 - self.rho**2) * self.std * eps
        return self.value


class ScriptedPolicy:
    """Navigate to the goal or to random waypoints through the maze, with noise."""

    def __init__(
        self,
        env: gym.Env[Any, Any],
        goal_prob: float = 0.5,
        noise_std: float = 0.2,
        noise_rho: float = 0.8,
    ) -> None:
        """Build the policy.

        Args:
            env: A ``worldplan/Maze-v0`` env, wrapped or not.
            goal_prob: Chance that each new target is the episode's goal (1.0: go to the goal
                and stay there).
            noise_std: Stationary std of the action noise per axis.
            noise_rho: Step-to-step correlation of the noise.
        """
        if not 0.0 <= goal_prob <= 1.0:
            raise ValueError(f"goal_prob must be in [0, 1], got {goal_prob}")
        if noise_std < 0.0 or not 0.0 <= noise_rho < 1.0:
            raise ValueError(
                f"need noise_std >= 0 and 0 <= noise_rho < 1, got {noise_std}, {noise_rho}"
            )
        self.env = _maze_env(env)
        self.goal_prob = goal_prob
        self._noise = _CorrelatedNoise(noise_rho, noise_std)
        self._rng = np.random.default_rng()
        self._target: NDArray[np.float64] | None = None
        self._to_goal = False
        self._episode_goal: NDArray[np.float64] | None = None

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; ``seed`` makes the policy's own randomness repeatable."""
        self._rng = np.random.default_rng(seed)
        self._noise.reset()
        self._target = None
        self._episode_goal = None

    def __call__(self, obs: dict[str, NDArray[Any]], info: dict[str, Any]) -> NDArray[np.float32]:
        """Return the next action (float32, inside ``[-1, 1]^2``)."""
        del obs, info
        state = self.env.get_state()
        goal = self.env.goal_state
        if self._episode_goal is None or not np.array_equal(goal, self._episode_goal):
            self._episode_goal = goal
            self._pick_target()
        target = self._current_target(state)
        if self.env.layout.name == "umaze":
            action = self._umaze_action(state, target)
        else:
            action = self._tworoom_action(state, target)
        action = action + self._noise(self._rng)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _pick_target(self) -> None:
        self._to_goal = bool(self._rng.uniform() < self.goal_prob)
        if self._to_goal:
            assert self._episode_goal is not None
            self._target = self._episode_goal[:2].copy()
        else:
            self._target = _random_free_point(self.env, self._rng)

    def _current_target(self, state: NDArray[np.float64]) -> NDArray[np.float64]:
        assert self._target is not None
        reached = UMAZE_REACHED if self.env.layout.name == "umaze" else TWOROOM_REACHED
        if not self._to_goal and np.linalg.norm(state[:2] - self._target) < reached:
            self._pick_target()
        assert self._target is not None
        return self._target

    def _umaze_action(
        self, state: NDArray[np.float64], target: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        here = (round(float(state[0])), round(float(state[1])))
        there = (round(float(target[0])), round(float(target[1])))
        path = umaze_path(here, there)
        waypoint = np.array(path[1], dtype=np.float64) if len(path) > 1 else target
        result: NDArray[np.float64] = UMAZE_KP * (waypoint - state[:2]) - UMAZE_KD * state[2:4]
        return result

    def _tworoom_action(
        self, state: NDArray[np.float64], target: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        lay = self.env.layout
        pos = state[:2]
        offset = pos[0] - lay.wall_x
        side_target = 1.0 if target[0] > lay.wall_x else -1.0
        doorstep = TWOROOM_WALL_HALF_WIDTH + TWOROOM_DOOR_APPROACH
        exit_point = np.array([lay.wall_x + side_target * doorstep, lay.door_y])
        waypoint = target
        if abs(offset) < TWOROOM_WALL_HALF_WIDTH:  # inside the doorway: leave towards the target
            waypoint = exit_point
        elif np.sign(offset) != side_target:  # wrong room: line up with the door, then cross
            lined_up = abs(pos[1] - lay.door_y) < TWOROOM_LINED_UP and abs(offset) <= doorstep + 0.5
            waypoint = (
                exit_point
                if lined_up
                else np.array([lay.wall_x - side_target * doorstep, lay.door_y])
            )
        result: NDArray[np.float64] = (waypoint - pos) / 2.0
        return result


class RandomPolicy:
    """Temporally correlated random actions: AR(1) with correlation ``rho``, clipped to the box."""

    def __init__(self, env: gym.Env[Any, Any], rho: float = 0.9, std: float = 0.7) -> None:
        """Build the policy.

        Args:
            env: A ``worldplan/Maze-v0`` env, wrapped or not.
            rho: Step-to-step correlation in [0, 1).
            std: Stationary std per axis before clipping.
        """
        if std < 0.0 or not 0.0 <= rho < 1.0:
            raise ValueError(f"need std >= 0 and 0 <= rho < 1, got std={std}, rho={rho}")
        self.env = _maze_env(env)
        self._noise = _CorrelatedNoise(rho, std)
        self._rng = np.random.default_rng()

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; ``seed`` makes the policy's own randomness repeatable."""
        self._rng = np.random.default_rng(seed)
        self._noise.reset()
        self._noise.value = self._rng.uniform(-1.0, 1.0, size=2) * self._noise.std

    def __call__(self, obs: dict[str, NDArray[Any]], info: dict[str, Any]) -> NDArray[np.float32]:
        """Return the next action (float32, inside ``[-1, 1]^2``)."""
        del obs, info
        return np.clip(self._noise(self._rng), -1.0, 1.0).astype(np.float32)


def _random_free_point(env: MazeEnv, rng: np.random.Generator) -> NDArray[np.float64]:
    """A random point with some clearance from the walls, anywhere in the maze."""
    lay = env.layout
    if lay.name == "umaze":
        cells = umaze_free_cells()
        cell = np.array(cells[int(rng.integers(len(cells)))], dtype=np.float64)
        return cell + rng.uniform(-0.3, 0.3, size=2)
    while True:
        point = rng.uniform(lay.extent[0] + 7.0, lay.extent[2] - 7.0, size=2)
        if lay.is_free(float(point[0]), float(point[1]), 3.0):
            return point
