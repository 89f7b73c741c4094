"""The planning loop's upper bound: the same goals, CEM and cost, with a perfect model.

:class:`OracleController` plans every chunk with CEM as the service does (samples
drawn in the bundle's normalised action space with the same noise, the mean scored as
sample 0, a tenth of them refit the Gaussian, the mean is the plan, and the next plan
is warm-started as the service's MPC session does: the previous plan shifted by what
was executed, padded with its last action, searched with the warm spread), but each
candidate is rolled out in a private copy of the simulator from the episode's true
state, and its last frame is scored with the bundle's frozen encoder against the goal
image, plus ``proprio_weight`` times the normalised proprio distance to the goal's.
What it reaches bounds what any learned predictor can reach with this encoder, cost
and search budget; the gap to ``worldplan eval`` is the model's share.

With ``cost="state"`` the candidates are scored instead by the env's own success
error in units of its thresholds (:func:`state_error`): the search alone, with a
perfect model and a perfect cost, which separates the encoder cost's share of the
failures from the search budget's.

It reads the simulator's state, so it is a diagnostic, never a controller to deploy.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from numpy.typing import NDArray

from clients.closed_loop import Chunk, EpisodeConfig, Obs, run_episode
from clients.goals import GOAL_STEPS_DEFAULT, Goal, episode_limit, make_goal, world
from clients.seeds import EVAL_SEED_BASE, episode_seeds
from clients.stats import summarise
from planner import shift_plan
from planner.cem import coloured_actions
from planner.config import CEMConfig
from sims.granular import SUCCESS_CHAMFER
from sims.maze import SUCCESS_DISTANCE
from sims.pusht import SUCCESS_ANGLE, SUCCESS_POS_PX
from world_model.bundle import read_manifest
from world_model.encoders import load_encoder

OracleCost = Literal["encoder", "state"]


def state_error(env_id: str, layout: str, score: dict[str, float | bool]) -> float:
    """The env's success error in units of its thresholds, squared and summed.

    push-T: ``(pos_error / 20 px)^2 + (angle_error / (pi / 9))^2``; the maze:
    ``(distance / success distance of the layout)^2``; granular: ``(chamfer / 0.25)^2``.
    Every term is below 1 when the success check holds.
    """
    if env_id == "worldplan/PushT-v0":
        pos, angle = float(score["pos_error"]), float(score["angle_error"])
        return (pos / SUCCESS_POS_PX) ** 2 + (angle / SUCCESS_ANGLE) ** 2
    if env_id == "worldplan/Maze-v0":
        return (float(score["distance"]) / SUCCESS_DISTANCE[layout]) ** 2
    if env_id == "worldplan/Granular-v0":
        return (float(score["chamfer"]) / SUCCESS_CHAMFER) ** 2
    raise ValueError(f"no state cost for env {env_id!r}")


@dataclass(frozen=True)
class OracleConfig:
    """The search of one oracle plan (defaults: the README's closed-loop budget)."""

    horizon: int = 5
    """Planning steps (each ``frameskip`` env actions)."""
    samples: int = 100
    """Candidates per CEM iteration; the elites are the service's share (``CEMConfig.resized``)."""
    iterations: int = 10
    """CEM iterations per plan."""
    proprio_weight: float = 1.0
    """Weight of the normalised proprio distance to the goal's (0: visual cost only)."""
    seed: int = 0
    """Seed of the sampling (episode ``s`` uses ``seed + s``)."""
    init_std: float = 1.0
    """Initial std of the sampling, in normalised action units (the service's CEM: 1)."""
    warm_start: bool = True
    """Warm-start each plan from the previous one, as the service's MPC session does."""
    noise_beta: float = 0.0
    """Colour of the sampling noise along the env steps (``CEMConfig.noise_beta``)."""
    keep_elites: float = 0.0
    """Fraction of the elites carried into the next iteration (``CEMConfig.keep_elites``)."""
    cost: OracleCost = "encoder"
    """Score candidates with the bundle's encoder (the service's cost) or the env's own
    success error (:func:`state_error`)."""

    def __post_init__(self) -> None:
        for name in ("horizon", "samples", "iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.samples < 2:
            raise ValueError(f"samples must be >= 2, got {self.samples}")
        self.cem()  # checks init_std as the service's CEM does
        if self.cost not in ("encoder", "state"):
            raise ValueError(f"cost must be 'encoder' or 'state', got {self.cost!r}")
        if not np.isfinite(self.proprio_weight) or self.proprio_weight < 0:
            raise ValueError(
                f"proprio_weight must be a finite number >= 0, got {self.proprio_weight}"
            )

    def cem(self) -> CEMConfig:
        """The service's CEM with this horizon, sample count, initial std and noise."""
        return CEMConfig(
            horizon=self.horizon,
            init_std=self.init_std,
            noise_beta=self.noise_beta,
            keep_elites=self.keep_elites,
        ).resized(self.samples)


class OracleController:
    """CEM over the true simulator with a bundle's encoder cost (see the module docstring)."""

    def __init__(self, bundle: str | Path, config: OracleConfig, name: str = "oracle") -> None:
        manifest = read_manifest(bundle)
        self.name = name
        self.config = config
        self.env_id: str = manifest["env_id"]
        self.env_options: dict[str, Any] = dict(manifest["env_options"])
        self.image_size = int(manifest["image_size"])
        self.frameskip = int(manifest["frameskip"])
        norm = manifest["normalisation"]
        self._action_mean = np.asarray(norm["action_mean"], np.float64)  # (fs * A,)
        self._action_std = np.asarray(norm["action_std"], np.float64)
        self._proprio_std = np.asarray(norm["proprio_std"], np.float64)  # (P,)
        self.encoder = load_encoder(manifest["encoder"]["id"], image_size=self.image_size)
        self._sim: Any = None
        self._env: Any = None
        self._goal_features = torch.empty(0)
        self._goal_proprio: NDArray[np.float64] | None = None
        self._rng = np.random.default_rng(config.seed)
        self._cem = config.cem()
        self._plan: NDArray[np.float64] | None = None  # last plan (H, fs * A), env units
        self._executed = 0  # env steps executed since it was made

    def make_env(self) -> gym.Env[Any, Any]:
        """The env the bundle was trained on, rendering at its image size."""
        return gym.make(self.env_id, image_size=self.image_size, **self.env_options)

    def reset(self, env: gym.Env[Any, Any], goal: Goal) -> None:
        """Keep the episode's env (to read its state) and encode the goal."""
        self._env = world(env)
        if self._sim is None:
            self._sim = world(self.make_env())
        self._sim.reset(seed=goal.seed, options=goal.reset_options())
        self._goal_features = self.encoder(torch.as_tensor(goal.goal_image[None]))
        gp = goal.goal_proprio
        self._goal_proprio = None if gp is None else np.asarray(gp, np.float64)
        self._rng = np.random.default_rng(self.config.seed + goal.seed)
        self._plan, self._executed = None, 0

    def executed(self, env_steps: int) -> None:
        """Count the env steps executed since the last plan (they shift the warm start)."""
        self._executed += env_steps

    def initial_search(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Mean and std (H, frameskip * A) of the next plan's first samples, normalised.

        Cold: N(0, init_std), the data's mean action. Warm (after a plan): the service's
        ``shift_plan`` of the previous plan in env units (its unexecuted steps, padded
        with its last action), normalised, with the service's warm spread.
        """
        c, cem = self.config, self._cem
        dim = self._action_mean.shape[0]
        if not c.warm_start or self._plan is None:
            return np.zeros((c.horizon, dim)), np.full((c.horizon, dim), cem.init_std)
        steps = self._executed // self.frameskip  # planning steps, as the session counts them
        shifted = shift_plan(torch.from_numpy(self._plan), steps).numpy()
        mu = (shifted - self._action_mean) / self._action_std
        return mu, np.full_like(mu, cem.warm_init_std)

    def _noise(self, shape: tuple[int, ...]) -> NDArray[np.float64]:
        """Unit-variance noise (samples, H, frameskip * A), coloured along the env steps."""
        h, d = shape
        fs, a = self.frameskip, d // self.frameskip
        white = self._rng.standard_normal((self.config.samples, a, h * fs))
        return coloured_actions(torch.from_numpy(white), self.config.noise_beta, fs).numpy()

    def _cost(self, start: NDArray[np.float64], actions: NDArray[np.float64]) -> NDArray[Any]:
        """Cost (S,) of env action sequences (S, T, A) rolled out from ``start``."""
        if self.config.cost == "state":
            return self._state_cost(start, actions)
        frames, proprio = [], []
        for seq in actions:
            obs = self._roll_out(start, seq)
            frames.append(obs["pixels"])
            proprio.append(obs["proprio"])
        features = self.encoder(torch.as_tensor(np.stack(frames)))  # (S, N, D)
        cost = (features - self._goal_features).square().flatten(1).mean(1).double().numpy()
        if self._goal_proprio is not None and self.config.proprio_weight > 0:
            diff = (np.asarray(proprio, np.float64) - self._goal_proprio) / self._proprio_std
            cost = cost + self.config.proprio_weight * np.square(diff).mean(axis=1)
        return np.asarray(cost)

    def _state_cost(
        self, start: NDArray[np.float64], actions: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """The env's success error (S,) at the end of each sequence (S, T, A) from ``start``."""
        sim, layout = self._sim, str(self.env_options.get("layout", "umaze"))
        goal, errors = sim.goal_state, []
        for seq in actions:
            self._roll_out(start, seq)
            score = sim.evaluate_state(sim.get_state(), goal)
            errors.append(state_error(self.env_id, layout, score))
        return np.asarray(errors, np.float64)

    def _roll_out(self, start: NDArray[np.float64], seq: NDArray[np.float64]) -> Obs:
        """Step the simulator from ``start`` through env actions (T, A); the last obs."""
        self._sim.set_state(start)
        obs: Obs = {}
        for action in seq:
            obs, *_ = self._sim.step(action.astype(np.float32))
        return obs

    def act(self, obs: Obs) -> Chunk:
        """Plan ``horizon`` planning steps from the true state; return all their actions."""
        del obs
        if self._env is None:
            raise RuntimeError("call reset() before act()")
        t0 = time.perf_counter()
        c, fs, cem = self.config, self.frameskip, self._cem
        start = self._env.get_state()
        space = self._env.action_space
        low, high = np.tile(space.low, fs), np.tile(space.high, fs)  # (fs * A,)
        mu, std = self.initial_search()  # normalised planning actions
        best_cost = float("inf")
        kept = np.empty((0, *mu.shape))
        for _ in range(c.iterations):
            z = mu + std * self._noise(mu.shape)
            z[0] = mu  # the mean is scored, as the service's CEM does
            z[1 : 1 + len(kept)] = kept
            env_actions = np.clip(z * self._action_std + self._action_mean, low, high)
            z = (env_actions - self._action_mean) / self._action_std  # what was scored
            cost = self._cost(start, env_actions.reshape(c.samples, c.horizon * fs, -1))
            order = np.argsort(cost, kind="stable")[: cem.elites]
            best_cost = min(best_cost, float(cost[order[0]]))
            mu, std = z[order].mean(axis=0), np.maximum(z[order].std(axis=0), cem.min_std)
            kept = z[order[: cem.kept]]
        plan = np.clip(mu * self._action_std + self._action_mean, low, high)
        self._plan, self._executed = plan, 0
        ms = (time.perf_counter() - t0) * 1000.0
        actions = plan.reshape(c.horizon * fs, -1).astype(np.float32)
        return Chunk(actions, cost=best_cost, plan_ms=ms, round_trip_ms=ms)


def evaluate_oracle(
    bundle: str | Path,
    config: OracleConfig,
    episodes: int,
    *,
    seed: int = EVAL_SEED_BASE,
    goal_steps: int = GOAL_STEPS_DEFAULT,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Run the oracle on ``worldplan eval``'s goals; return the summary and the episodes."""
    controller = OracleController(bundle, config)
    env = controller.make_env()
    try:
        goals = [make_goal(env, s, goal_steps) for s in episode_seeds(seed, episodes)]
        limit = max_steps or episode_limit(controller.env_id)
        runs = [run_episode(env, g, controller, EpisodeConfig(limit)) for g in goals]
    finally:
        env.close()
    return {
        "bundle": str(bundle),
        "env_id": controller.env_id,
        "env_options": controller.env_options,
        "encoder": controller.encoder.encoder_id,
        "config": asdict(config),
        "seeds": [g.seed for g in goals],
        "goal_steps": goal_steps,
        "max_steps": limit,
        "summary": summarise(controller.name, runs).to_json(),
        "episodes": [e.to_json(with_actions=False) for e in runs],
    }
