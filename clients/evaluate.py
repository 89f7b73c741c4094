"""Closed-loop evaluation: the service at one or more budgets and the baselines, same seeds.

:func:`evaluate` picks the model for the env from ``GET /v1/models``, builds the
env the model expects (id, options, image size), draws every episode's goal
once (:mod:`clients.goals`), and runs each controller on those goals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np

import sims  # noqa: F401  (registers the worldplan envs)
from clients.client import Upload, WorldplanClient
from clients.closed_loop import (
    Controller,
    Episode,
    EpisodeConfig,
    NoOpController,
    RandomController,
    ServiceController,
    run_episode,
)
from clients.goals import (
    GOAL_POLICY,
    GOAL_STEPS_DEFAULT,
    EnvAlias,
    Goal,
    door_y,
    episode_limit,
    make_goal,
    resolve_env,
)
from clients.images import ImageFormat
from clients.report import budget_plot, write_json, write_video
from clients.seeds import EVAL_SEED_BASE, RANDOM_SEED_OFFSET, episode_seeds
from clients.session import MPCSession
from clients.stats import Summary, summarise
from clients.types import Budget, ModelInfo, PlannerName, PlanOptions

log = logging.getLogger(__name__)


#: Horizon of a plan made after the previous plan ran to its end short of the goal
#: (:mod:`clients.session`), per env, when an evaluation names none; envs not listed
#: keep the first plan's horizon. Push-T: after a first plan that misses, what is left
#: is a push from another side of the T, longer than the first plan's 5 steps; the
#: first plan stays at the server's horizon, where the predictor is most accurate
#: (README, "Where it stands"). Two-room replans are routine (goals through the door
#: take several plans) and were worse at horizon 10, so the maze keeps its horizon.
DEFAULT_REPLAN_HORIZON: dict[str, int] = {"worldplan/PushT-v0": 10}


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation.

    Attributes:
        env: Env alias (``pusht``, ``maze``, ``umaze``, ``tworoom``, ``granular``) or id.
        episodes: Episodes (seeds) per controller.
        planner: ``cem``, ``gradient`` or ``mppi``.
        seed: Base seed; episode ``i`` resets with ``seed + i``.
        model: Model bundle name; None picks the one served for ``env``.
        goal_steps: Env steps of the goal trajectory (25, or 50 / 100 for harder goals).
        execute_steps: Planning steps executed per plan; None executes the whole plan.
        max_steps: Env steps per episode; None uses the env's default.
        budgets: Optimiser iterations per plan; None in the tuple is the server default.
        horizon: Planning horizon; None is the server default.
        replan_horizon: Horizon of a plan made after the previous one ran to its end
            (see :mod:`clients.session`); None is the env's default
            (:data:`DEFAULT_REPLAN_HORIZON`), 0 keeps ``horizon``.
        samples: Sequences per optimiser iteration; None is the server default.
        noise_beta: CEM's sampling-noise colour; None is the server default.
        keep_elites: CEM's share of elites kept between iterations; None is the server's.
        proprio_weight: Weight of the goal-proprio distance in the cost; None is the
            server's default for the env.
        door_waypoint: Two-room maze: let the service aim the proprio cost past the door
            while the wall is in the way (the request's ``door_waypoint``).
        baselines: Also run the random and no-op baselines.
        video_dir: Write one video per episode here.
        video_format: ``gif`` or ``mp4``.
        upload: How images are sent.
        image_format: How images are encoded.
        send_proprio: Send the observed and goal proprio (off: the server uses the
            model's training mean, for models trained without proprio).
    """

    env: str
    episodes: int
    planner: PlannerName = "cem"
    seed: int = EVAL_SEED_BASE
    model: str | None = None
    goal_steps: int = GOAL_STEPS_DEFAULT
    execute_steps: int | None = None
    max_steps: int | None = None
    budgets: tuple[int | None, ...] = (None,)
    horizon: int | None = None
    replan_horizon: int | None = None
    samples: int | None = None
    noise_beta: float | None = None
    keep_elites: float | None = None
    proprio_weight: float | None = None
    door_waypoint: bool = True
    baselines: bool = True
    video_dir: Path | None = None
    video_format: Literal["gif", "mp4"] = "gif"
    upload: Upload = "json"
    image_format: ImageFormat = "png"
    send_proprio: bool = True

    def __post_init__(self) -> None:
        resolve_env(self.env)
        episode_seeds(self.seed, self.episodes)
        if not self.budgets or any(b is not None and b < 1 for b in self.budgets):
            raise ValueError(f"budgets must be iteration counts >= 1, got {self.budgets}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.replan_horizon is not None and not 0 <= self.replan_horizon <= 16:
            raise ValueError(f"replan_horizon must be in 0..16, got {self.replan_horizon}")
        if self.planner != "cem" and (self.noise_beta is not None or self.keep_elites is not None):
            raise ValueError("noise_beta and keep_elites apply to planner 'cem' only")

    def replan_horizon_for(self, env_id: str) -> int | None:
        """The replan horizon of an evaluation of ``env_id`` (None: the first plan's)."""
        if self.replan_horizon is None:
            return DEFAULT_REPLAN_HORIZON.get(env_id)
        return self.replan_horizon or None


@dataclass
class EvalResult:
    """Everything an evaluation produced."""

    config: EvalConfig
    model: ModelInfo
    goals: list[Goal]
    max_steps: int
    planned: list[Summary]
    baselines: list[Summary]
    episodes: list[Episode]

    def to_json(self) -> dict[str, Any]:
        """The results file's content."""
        c = self.config
        protocol = GOAL_POLICY.get(self.model.env_id)
        return {
            "env": c.env,
            "env_id": self.model.env_id,
            "model": self.model.model_dump(),
            "planner": c.planner,
            "seeds": [g.seed for g in self.goals],
            "goal_protocol": {
                "goal_steps": c.goal_steps,
                "goal_policy": None if protocol is None else protocol.describe(),
                "goals": [
                    {"seed": g.seed, "policy_seed": g.policy_seed, "redraws": g.redraws}
                    for g in self.goals
                ],
            },
            "execute_steps": c.execute_steps,
            "max_steps": self.max_steps,
            "budgets": list(c.budgets),
            "horizon": c.horizon,
            "replan_horizon": c.replan_horizon_for(self.model.env_id),
            "samples": c.samples,
            "noise_beta": c.noise_beta,
            "keep_elites": c.keep_elites,
            "proprio_weight": c.proprio_weight,
            "door_waypoint": c.door_waypoint,
            "summaries": [s.to_json() for s in self.planned],
            "baselines": [s.to_json() for s in self.baselines],
            "episodes": [e.to_json() for e in self.episodes],
        }


def select_model(models: list[ModelInfo], alias: EnvAlias, name: str | None) -> ModelInfo:
    """The model named ``name``, or the only/first one served for the alias's env."""
    if name is not None:
        for m in models:
            if m.name == name:
                return m
        raise ValueError(f"the server has no model {name!r}; it has {[m.name for m in models]}")
    matching = [
        m
        for m in models
        if m.env_id == alias.env_id
        and all(str(m.env_kwargs.get(k)) == v for k, v in alias.env_kwargs)
    ]
    if not matching:
        served = [(m.name, m.env_id, m.env_kwargs) for m in models]
        raise ValueError(f"the server has no model for {alias.env_id} {alias.env_kwargs}: {served}")
    return sorted(matching, key=lambda m: m.name)[0]


def make_env(model: ModelInfo) -> gym.Env[Any, Any]:
    """The env the model was trained on, rendering at the model's image size."""
    kwargs: dict[str, Any] = {**model.env_kwargs, "image_size": model.image_size}
    return gym.make(model.env_id, **kwargs)


def _check_proprio(env: gym.Env[Any, Any], model: ModelInfo) -> None:
    space = env.observation_space
    proprio = space["proprio"] if isinstance(space, gym.spaces.Dict) else None
    dim = None if proprio is None or proprio.shape is None else int(np.prod(proprio.shape))
    if dim != model.proprio_dim:
        raise ValueError(
            f"model {model.name!r} takes proprio of {model.proprio_dim} values but "
            f"{model.env_id} observes {dim}; evaluate with send_proprio=False (--no-proprio)"
        )


def _label(budget: int | None) -> str:
    return "default" if budget is None else str(budget)


def _controllers(client: WorldplanClient, config: EvalConfig, model: ModelInfo) -> list[Controller]:
    planned: list[Controller] = []
    for budget in config.budgets:
        options = PlanOptions(
            model=model.name,
            planner=config.planner,
            horizon=config.horizon,
            samples=config.samples,
            noise_beta=config.noise_beta,
            keep_elites=config.keep_elites,
            proprio_weight=config.proprio_weight,
            door_waypoint=config.door_waypoint,
            budget=Budget(iterations=budget),
        )
        session = MPCSession(
            client,
            options,
            upload=config.upload,
            image_format=config.image_format,
            replan_horizon=config.replan_horizon_for(model.env_id),
        )
        planned.append(
            ServiceController(
                session,
                f"{config.planner}@{_label(budget)}",
                config.execute_steps,
                send_proprio=config.send_proprio and model.proprio_dim > 0,
                episode_options=lambda g: {"door_y": door_y(model.env_id, g)},
            )
        )
    return planned


def evaluate(
    client: WorldplanClient,
    config: EvalConfig,
    on_episode: Callable[[Episode], None] | None = None,
) -> EvalResult:
    """Run the evaluation ``config`` through ``client`` (see the module docstring)."""
    model = select_model(client.models(), resolve_env(config.env), config.model)
    env = make_env(model)
    if config.send_proprio and model.proprio_dim > 0:
        _check_proprio(env, model)
    try:
        goals = [
            make_goal(env, s, config.goal_steps)
            for s in episode_seeds(config.seed, config.episodes)
        ]
        max_steps = config.max_steps or episode_limit(model.env_id)
        episode_config = EpisodeConfig(max_steps, record_frames=config.video_dir is not None)
        planned = _controllers(client, config, model)
        baselines: list[Controller] = []
        if config.baselines:
            baselines = [
                RandomController(model.frameskip, RANDOM_SEED_OFFSET),
                NoOpController(model.frameskip),
            ]
        runs: dict[str, list[Episode]] = {}
        for controller in [*planned, *baselines]:
            runs[controller.name] = []
            for goal in goals:
                ep = run_episode(env, goal, controller, episode_config)
                _video(config, model, goal, ep)
                ep.frames = []
                runs[controller.name].append(ep)
                if on_episode is not None:
                    on_episode(ep)
    finally:
        env.close()
    return EvalResult(
        config=config,
        model=model,
        goals=goals,
        max_steps=max_steps,
        planned=[summarise(c.name, runs[c.name]) for c in planned],
        baselines=[summarise(c.name, runs[c.name]) for c in baselines],
        episodes=[e for eps in runs.values() for e in eps],
    )


def _video(config: EvalConfig, model: ModelInfo, goal: Goal, ep: Episode) -> None:
    if config.video_dir is None or not ep.frames:
        return
    env_name = model.env_id.split("/")[-1]
    name = f"{env_name}_{ep.controller.replace('@', '-')}_seed{ep.seed}.{config.video_format}"
    write_video(config.video_dir / name, ep.frames, goal.goal_image)


def write_outputs(result: EvalResult, out: Path, plot: Path | None = None) -> Path:
    """Write the results JSON at ``out`` and the budget plot (``out`` with ``.png``)."""
    write_json(out, result.to_json())
    plot = plot or out.with_suffix(".png")
    c = result.config
    title = (
        f"{result.model.name} ({c.env}), {c.planner}, {c.episodes} episodes, "
        f"goals {c.goal_steps} steps"
    )
    budget_plot(plot, [_label(b) for b in c.budgets], result.planned, result.baselines, title)
    return plot
