"""Evaluation goals by DINO-WM's protocol, and the seeds they come from (all listed here).

* push-T and maze: reset the env with the episode seed and run a held-out policy
  (its own seed stream, :mod:`clients.seeds`). The first ``burn_in`` steps are
  skipped; the state reached then is the start, and the state ``goal_steps``
  env steps later (25 = 5 planning steps x frameskip 5; the harder sets use 50
  and 100) is the goal. A draw whose goal the start state already satisfies is
  redrawn with the next policy seed.

  DINO-WM's goals are segments of its held-out dataset trajectories (human
  push-T demonstrations, action std ~0.2 per axis). For push-T the held-out
  policy is the scripted pusher at that pace (``speed`` 0.3 gives std 0.20)
  and the segment starts after a 25-step burn-in, once the pusher has walked
  to the T: a segment of a trajectory rather than its very beginning, where the
  pusher is still far from the T and the T does not move.
* granular: the env's own goal, the start pile gathered in and shifted.

The goal image is rendered by putting the env into the goal state, rendering,
then restoring the start state; the env's success check is then against the goal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from clients.seeds import goal_policy_seed
from sims.base import WorldEnv
from sims.policies import Policy, PolicyKind, make_policy

MAX_GOAL_REDRAWS = 20
GOAL_STEPS_DEFAULT = 25
"""Env steps of the goal trajectory: 5 planning steps x frameskip 5 (DINO-WM)."""
GOAL_STEPS_HARD = (50, 100)
"""The harder goal sets."""


@dataclass(frozen=True)
class GoalPolicy:
    """The held-out policy whose trajectories give an env's goals."""

    kind: PolicyKind
    options: tuple[tuple[str, float], ...] = ()
    """Keyword options of the policy's constructor."""
    burn_in: int = 0
    """Env steps of the trajectory before its start state."""

    def make(self, env: gym.Env[Any, Any], seed: int) -> Policy:
        """The policy, seeded."""
        return make_policy(env, self.kind, seed=seed, **dict(self.options))

    def describe(self) -> dict[str, Any]:
        """The protocol as JSON values (results files record it)."""
        return {"kind": self.kind, "options": dict(self.options), "burn_in": self.burn_in}


GOAL_POLICY: dict[str, GoalPolicy | None] = {
    # Contact-rich segments at the pace of DINO-WM's push-T data (see the module docstring).
    "worldplan/PushT-v0": GoalPolicy("scripted", (("speed", 0.3),), burn_in=25),
    "worldplan/Maze-v0": GoalPolicy("scripted"),  # through the corridors / the door
    "worldplan/Granular-v0": None,  # the env's own gathered goal
}
"""Which held-out policy draws goal trajectories, per env (None: the env's own goal)."""


def episode_limit(env_id: str) -> int:
    """Env steps an episode may take before it counts as a failure: the env's own time limit.

    As registered (:mod:`sims`): 300 for push-T and the maze (gym-pusht's and D4RL's
    episode length; 12 plans of 25 steps), 20 strokes for granular. DINO-WM's MPC
    replans until success with no limit at all; the env's limit is the nearest finite
    bound, and every controller of an evaluation gets the same one.
    """
    steps = gym.spec(env_id).max_episode_steps
    if steps is None:
        raise ValueError(f"env {env_id!r} is registered without a time limit; pass max_steps")
    return int(steps)


@dataclass(frozen=True)
class EnvAlias:
    """A short name on the command line for an env id and its options."""

    env_id: str
    env_kwargs: tuple[tuple[str, str], ...] = ()


ENV_ALIASES: dict[str, EnvAlias] = {
    "pusht": EnvAlias("worldplan/PushT-v0"),
    "maze": EnvAlias("worldplan/Maze-v0"),
    "umaze": EnvAlias("worldplan/Maze-v0", (("layout", "umaze"),)),
    "tworoom": EnvAlias("worldplan/Maze-v0", (("layout", "tworoom"),)),
    "wall": EnvAlias("worldplan/Maze-v0", (("layout", "tworoom"),)),
    "granular": EnvAlias("worldplan/Granular-v0"),
}


def resolve_env(name: str) -> EnvAlias:
    """An alias (``pusht``, ``maze``, ``umaze``, ``tworoom``, ``granular``) or a full env id."""
    if name in ENV_ALIASES:
        return ENV_ALIASES[name]
    for alias in ENV_ALIASES.values():
        if alias.env_id == name:
            return EnvAlias(name)
    known = ", ".join([*ENV_ALIASES, *sorted({a.env_id for a in ENV_ALIASES.values()})])
    raise ValueError(f"unknown env {name!r}; known: {known}")


@dataclass(frozen=True)
class Goal:
    """One evaluation episode's start and goal.

    Attributes:
        seed: The env's reset seed.
        start_state: The start state (``env.get_state()`` after the reset).
        goal_state: The goal state.
        goal_image: The goal rendered, uint8 (S, S, 3).
        goal_proprio: Proprio observed in the goal state (None for granular, whose
            board pose is not part of the goal).
        goal_steps: Env steps of the goal trajectory (0 for the env's own goal).
        policy_seed: Seed of the goal trajectory's policy (None for the env's own goal).
        redraws: How many trajectories were drawn again because the start already succeeded.
    """

    seed: int
    start_state: NDArray[np.float64]
    goal_state: NDArray[np.float64]
    goal_image: NDArray[np.uint8]
    goal_proprio: NDArray[np.float32] | None
    goal_steps: int
    policy_seed: int | None
    redraws: int

    def reset_options(self) -> dict[str, Any]:
        """``env.reset`` options putting the env at the start with this goal."""
        return {"state": self.start_state.copy(), "goal_state": self.goal_state.copy()}


def world(env: gym.Env[Any, Any]) -> WorldEnv:
    """The worldplan env inside any wrappers."""
    inner = env.unwrapped
    if not isinstance(inner, WorldEnv):
        raise TypeError(f"expected a worldplan env, got {type(inner).__name__}")
    return inner


def _trajectory_goal(
    env: WorldEnv, seed: int, goal_steps: int, protocol: GoalPolicy
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float32], int, int]:
    """Start state, goal state, its proprio, the policy seed and the number of redraws."""
    for redraw in range(MAX_GOAL_REDRAWS):
        obs, info = env.reset(seed=seed)
        policy_seed = goal_policy_seed(seed, redraw)
        policy = protocol.make(env, policy_seed)
        for _ in range(protocol.burn_in):
            obs, _, _, _, info = env.step(policy(obs, info))
        start = env.get_state()
        for _ in range(goal_steps):
            obs, _, _, _, info = env.step(policy(obs, info))
        goal = env.get_state()
        if not env.evaluate_state(start, goal)["is_success"]:
            return start, goal, obs["proprio"].copy(), policy_seed, redraw
    raise RuntimeError(
        f"{MAX_GOAL_REDRAWS} goal trajectories of {goal_steps} steps from seed {seed} all "
        f"ended where the start already succeeds; use more goal steps"
    )


def make_goal(env: gym.Env[Any, Any], seed: int, goal_steps: int = GOAL_STEPS_DEFAULT) -> Goal:
    """Draw the goal of the episode with reset seed ``seed`` (see the module docstring).

    On return the env is at the start state with the goal set (``env.goal_state``).
    """
    inner = world(env)
    env_id = inner.spec.id if inner.spec is not None else type(inner).__name__
    if env_id not in GOAL_POLICY:
        raise ValueError(f"no goal protocol for env {env_id!r}; known: {sorted(GOAL_POLICY)}")
    protocol = GOAL_POLICY[env_id]
    proprio: NDArray[np.float32] | None
    if protocol is None:
        inner.reset(seed=seed)
        start, goal_state = inner.get_state(), inner.goal_state
        proprio, policy_seed, redraws, steps = None, None, 0, 0
    else:
        if goal_steps < 1:
            raise ValueError(f"goal_steps must be >= 1, got {goal_steps}")
        start, goal_state, proprio, policy_seed, redraws = _trajectory_goal(
            inner, seed, goal_steps, protocol
        )
        steps = goal_steps
    inner.reset(seed=seed)
    inner.set_state(goal_state)
    image = np.ascontiguousarray(inner.render(), dtype=np.uint8)
    goal = Goal(seed, start, goal_state, image, proprio, steps, policy_seed, redraws)
    inner.reset(seed=seed, options=goal.reset_options())
    return goal


MAZE_ID = "worldplan/Maze-v0"
_MAZE_LAYOUT, _MAZE_DOOR_Y, _TWOROOM = 4, 6, 1.0  # state entries (see MazeEnv.state_labels)


def door_y(env_id: str, goal: Goal) -> float | None:
    """The two-room maze's door centre for an episode (it places the wall guardrail)."""
    if env_id == MAZE_ID and goal.start_state[_MAZE_LAYOUT] == _TWOROOM:
        return float(goal.start_state[_MAZE_DOOR_Y])
    return None
