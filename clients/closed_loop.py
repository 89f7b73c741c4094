"""The closed-loop runner: a sim drives the planning service (or a baseline) to a goal.

One episode: put the env at the goal protocol's start with its goal, then loop:
observe, ask the controller for a chunk of env actions (for the service: POST
the observation and goal, keep the first ``k`` planning steps x frameskip, or
all), execute them, until the env's own success check holds at some step or the
step limit is reached. Success never stops planning inside a plan; it only ends
the episode (as DINO-WM's evaluation: a success is the check holding at any step
before the limit).

Controllers: :class:`ServiceController` (the service, warm-started MPC),
:class:`RandomController` (uniform random actions) and :class:`NoOpController`
(zero action; no stroke at all for granular), all on the same seeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from clients.errors import BadRequestError
from clients.goals import Goal, world
from clients.session import MPCSession

log = logging.getLogger(__name__)

IDLE_NOOP_ENVS = frozenset({"worldplan/Granular-v0"})
"""Envs without a do-nothing action (every granular action is a stroke): the no-op
baseline leaves them untouched instead of stepping."""

Obs = dict[str, NDArray[Any]]


@dataclass(frozen=True)
class Chunk:
    """Env actions to execute before asking again, with what it cost to get them.

    Attributes:
        actions: (K, A) env actions, in the env's action units.
        idle: Execute nothing for K steps (the no-op of envs without a zero action).
        cost: The plan's predicted cost, if any.
        plan_ms: The server's planning time, if any.
        round_trip_ms: Wall time of obtaining the chunk, as the client saw it.
        plan_id: The server's plan id, if any.
        refusal: Why the service refused to return a plan (its final guardrail check
            found the best plan breaking a hard bound); the chunk then holds still.
    """

    actions: NDArray[np.float32]
    idle: bool = False
    cost: float | None = None
    plan_ms: float | None = None
    round_trip_ms: float = 0.0
    plan_id: str | None = None
    refusal: str | None = None


class Controller(Protocol):
    """What decides the actions of an episode."""

    name: str

    def reset(self, env: gym.Env[Any, Any], goal: Goal) -> None:
        """Start an episode toward ``goal`` in ``env``."""

    def act(self, obs: Obs) -> Chunk:
        """The next chunk of actions for observation ``obs``."""
        ...

    def executed(self, env_steps: int) -> None:
        """Report how many actions of the last chunk were executed."""


class ServiceController:
    """Plans through the service with a warm-started :class:`MPCSession`.

    Args:
        session: The MPC session (client and plan options).
        name: Label of this controller in results (e.g. ``"cem@30"``).
        execute_steps: Planning steps executed per plan (times the frameskip);
            None executes the whole plan.
        send_proprio: Send the observation's and goal's proprio with each request.
        episode_options: Extra plan options per episode (e.g. the two-room door), merged
            over the session's options at each reset; the plan seed is the episode seed.
    """

    def __init__(
        self,
        session: MPCSession,
        name: str,
        execute_steps: int | None = None,
        send_proprio: bool = True,
        episode_options: Callable[[Goal], dict[str, object]] | None = None,
    ) -> None:
        if execute_steps is not None and execute_steps < 1:
            raise ValueError(f"execute_steps must be >= 1 or None (all), got {execute_steps}")
        self.session = session
        self.name = name
        self.execute_steps = execute_steps
        self.send_proprio = send_proprio
        self.episode_options = episode_options
        self._base = session.options
        self._goal: Goal | None = None
        self._action_shape: tuple[int, ...] = ()

    def reset(self, env: gym.Env[Any, Any], goal: Goal) -> None:
        """Start an episode: forget the previous plan, set the episode's options."""
        self._action_shape = tuple(env.action_space.shape or ())
        extra = self.episode_options(goal) if self.episode_options else {}
        update = {"seed": goal.seed % 2**31, **extra}
        self.session.options = self._base.model_copy(update=update)
        self.session.reset()
        self._goal = goal

    def act(self, obs: Obs) -> Chunk:
        """POST the observation and goal; keep the first ``execute_steps`` planning steps."""
        if self._goal is None:
            raise RuntimeError("call reset() before act()")
        goal = self._goal
        proprio = obs["proprio"].tolist() if self.send_proprio else None
        goal_proprio = (
            goal.goal_proprio.tolist()
            if self.send_proprio and goal.goal_proprio is not None
            else None
        )
        start = time.perf_counter()
        try:
            plan = self.session.plan(obs["pixels"], goal.goal_image, proprio, goal_proprio)
        except BadRequestError as exc:
            if "plan refused" not in exc.detail:
                raise
            return self._hold(exc.detail, (time.perf_counter() - start) * 1000.0)
        round_trip = (time.perf_counter() - start) * 1000.0
        actions = np.asarray(plan.actions, dtype=np.float32)
        if actions.ndim != 2 or actions.shape[0] == 0:
            raise ValueError(f"plan {plan.plan_id} has no actions (shape {actions.shape})")
        if self.execute_steps is not None:
            actions = actions[: self.execute_steps * plan.frameskip]
        return Chunk(actions, False, plan.cost, plan.timing.plan_ms, round_trip, plan.plan_id)

    def executed(self, env_steps: int) -> None:
        """Tell the session, so that the next plan is warm-started at the right shift."""
        self.session.executed(env_steps)

    def _hold(self, reason: str, round_trip_ms: float) -> Chunk:
        """After a refusal: hold still for one step, then replan cold with the next seed."""
        opts = self.session.options
        self.session.options = opts.model_copy(update={"seed": (opts.seed + 1) % 2**31})
        self.session.reset()
        hold = np.zeros((1, *self._action_shape), np.float32)
        return Chunk(hold, idle=True, round_trip_ms=round_trip_ms, refusal=reason)


class RandomController:
    """Uniform random actions in the env's action box, seeded per episode."""

    def __init__(self, chunk: int, seed_offset: int = 0, name: str = "random") -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.name = name
        self.chunk = chunk
        self.seed_offset = seed_offset
        self._space: gym.spaces.Box | None = None
        self._rng = np.random.default_rng(0)

    def reset(self, env: gym.Env[Any, Any], goal: Goal) -> None:
        """Seed the actions from the episode's seed."""
        space = env.action_space
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(f"random actions need a Box action space, got {space}")
        self._space = space
        self._rng = np.random.default_rng(goal.seed + self.seed_offset)

    def act(self, obs: Obs) -> Chunk:
        """``chunk`` uniform random actions."""
        del obs
        if self._space is None:
            raise RuntimeError("call reset() before act()")
        low, high = self._space.low, self._space.high
        actions = self._rng.uniform(low, high, size=(self.chunk, *low.shape)).astype(np.float32)
        return Chunk(actions)

    def executed(self, env_steps: int) -> None:
        """Nothing to remember."""


class NoOpController:
    """Do nothing: zero actions, or no step at all where no action is neutral."""

    def __init__(self, chunk: int, name: str = "noop") -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.name = name
        self.chunk = chunk
        self._shape: tuple[int, ...] = ()
        self._idle = False

    def reset(self, env: gym.Env[Any, Any], goal: Goal) -> None:
        """Read the action shape and whether the env has a zero action."""
        del goal
        shape = env.action_space.shape
        if shape is None:
            raise TypeError("no-op actions need an action space with a shape")
        self._shape = tuple(shape)
        spec = world(env).spec
        self._idle = spec is not None and spec.id in IDLE_NOOP_ENVS

    def act(self, obs: Obs) -> Chunk:
        """``chunk`` zero actions (or idle steps)."""
        del obs
        return Chunk(np.zeros((self.chunk, *self._shape), dtype=np.float32), idle=self._idle)

    def executed(self, env_steps: int) -> None:
        """Nothing to remember."""


@dataclass(frozen=True)
class EpisodeConfig:
    """How an episode runs.

    Attributes:
        max_steps: Env steps before the episode ends as a failure.
        record_frames: Keep every observed frame (for videos).
        stop_on_success: End the episode as soon as the success check holds.
    """

    max_steps: int
    record_frames: bool = False
    stop_on_success: bool = True

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")


@dataclass
class Episode:
    """The record of one episode (JSON-ready except ``frames``)."""

    env_id: str
    controller: str
    seed: int
    metric_name: str
    start_metric: float
    success: bool = False
    success_step: int | None = None
    steps: int = 0
    final_metric: float = float("nan")
    best_metric: float = float("nan")
    actions: list[list[float]] = field(default_factory=list)
    metrics: list[float] = field(default_factory=list)
    costs: list[float | None] = field(default_factory=list)
    plan_ms: list[float | None] = field(default_factory=list)
    round_trip_ms: list[float] = field(default_factory=list)
    plan_ids: list[str | None] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    frames: list[NDArray[np.uint8]] = field(default_factory=list, repr=False)

    def to_json(self, with_actions: bool = True) -> dict[str, Any]:
        """The record as JSON-serialisable data (no frames)."""
        out = {k: v for k, v in self.__dict__.items() if k != "frames"}
        if not with_actions:
            out.pop("actions")
        return out


HIGHER_IS_BETTER = frozenset({"coverage"})
"""Env metrics where more is better; the others (distance, chamfer) are distances."""


def _better(metric_name: str, a: float, b: float) -> float:
    """The better of two values of the metric ``metric_name``."""
    return max(a, b) if metric_name in HIGHER_IS_BETTER else min(a, b)


def _execute(
    env: gym.Env[Any, Any],
    chunk: Chunk,
    state: tuple[Obs, dict[str, Any]],
    ep: Episode,
    config: EpisodeConfig,
) -> tuple[Obs, dict[str, Any], int]:
    """Run a chunk's actions; stop at the step limit or (if configured) at success."""
    obs, info = state
    done = 0
    for action in chunk.actions:
        if ep.steps >= config.max_steps:
            break
        if not chunk.idle:
            obs, _, _, _, info = env.step(action)
        ep.steps += 1
        done += 1
        ep.actions.append([float(v) for v in action] if not chunk.idle else [])
        metric = float(info[ep.metric_name])
        ep.metrics.append(metric)
        ep.best_metric = _better(ep.metric_name, ep.best_metric, metric)
        if config.record_frames:
            ep.frames.append(obs["pixels"].copy())
        if info["is_success"] and not ep.success:
            ep.success, ep.success_step = True, ep.steps
            if config.stop_on_success:
                break
    return obs, info, done


def run_episode(
    env: gym.Env[Any, Any], goal: Goal, controller: Controller, config: EpisodeConfig
) -> Episode:
    """Run one episode of ``controller`` from ``goal``'s start toward its goal."""
    inner = world(env)
    obs, info = inner.reset(seed=goal.seed, options=goal.reset_options())
    name = inner.metric_name
    ep = Episode(
        env_id=inner.spec.id if inner.spec is not None else type(inner).__name__,
        controller=controller.name,
        seed=goal.seed,
        metric_name=name,
        start_metric=float(info[name]),
        final_metric=float(info[name]),
        best_metric=float(info[name]),
    )
    if config.record_frames:
        ep.frames.append(obs["pixels"].copy())
    controller.reset(inner, goal)
    start = time.perf_counter()
    while ep.steps < config.max_steps and not (ep.success and config.stop_on_success):
        chunk = controller.act(obs)
        if len(chunk.actions) == 0:
            raise ValueError(f"controller {controller.name!r} returned no actions")
        ep.costs.append(chunk.cost)
        ep.plan_ms.append(chunk.plan_ms)
        ep.round_trip_ms.append(chunk.round_trip_ms)
        ep.plan_ids.append(chunk.plan_id)
        if chunk.refusal is not None:
            ep.refusals.append(chunk.refusal)
        obs, info, done = _execute(inner, chunk, (obs, info), ep, config)
        controller.executed(done)
    ep.final_metric = float(info[name])
    ep.wall_s = time.perf_counter() - start
    log.debug(
        "episode seed %d %s: success=%s steps=%d", goal.seed, ep.controller, ep.success, ep.steps
    )
    return ep
