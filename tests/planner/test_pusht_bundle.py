"""The planner on the shipped push-T bundle (``models/pusht``), as issue 4 asks.

* Planning cost decreases over iterations (CEM's per-iteration best cost).
* When the pusher is far from the block, the planned first action moves it toward the
  block (the goal frame shows the block pushed, with the pusher beside it), with the
  goal-proprio term the service adds for push-T.

Small budgets keep the file fast on two CPU cores; the checks need a trained model,
not a converged plan.
"""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import sims  # noqa: F401 - registers the envs
from planner import Budget, CEMConfig, GradientConfig, guardrails_for, plan
from planner.config import ObjectiveConfig
from sims.pusht import PushTEnv
from world_model.bundle import load_bundle
from world_model.model import WorldModel
from world_model.types import Latent

ENV_ID = "worldplan/PushT-v0"
BUNDLE = Path(__file__).resolve().parents[2] / "models" / "pusht"


@pytest.fixture(scope="module")
def model() -> WorldModel:
    torch.set_num_threads(1)
    return load_bundle(BUNDLE, env_id=ENV_ID)


@pytest.fixture(scope="module")
def env(model: WorldModel) -> gym.Env:
    e = gym.make(ENV_ID, image_size=model.spec.image_size, terminate_on_success=False)
    e.reset(seed=0)
    return e


def _latent(model: WorldModel, env: gym.Env, state: np.ndarray) -> Latent:
    inner = env.unwrapped
    assert isinstance(inner, PushTEnv)
    pixels = inner.render_state(state)  # (S, S, 3) uint8
    images = torch.as_tensor(pixels)[None, None]  # (1, 1, S, S, 3)
    proprio = torch.as_tensor(state[[0, 1, 5, 6]], dtype=torch.float32)[None, None]  # (1, 1, 4)
    return model.encode_images(images, proprio)


def _state(agent: tuple[float, float], block: tuple[float, float, float]) -> np.ndarray:
    return np.array([*agent, *block, 0.0, 0.0])


def test_planning_cost_decreases_over_iterations(model: WorldModel, env: gym.Env) -> None:
    start = _state((150.0, 380.0), (300.0, 250.0, 0.6))
    goal = _state((250.0, 300.0), (320.0, 230.0, 0.9))
    config = CEMConfig(samples=64, elites=8)
    result = plan(
        model,
        _latent(model, env, start),
        _latent(model, env, goal),
        config,
        guardrails_for(ENV_ID),
        budget=Budget(max_iterations=6),
        seed=0,
    )
    trace = result.trace
    assert len(trace) == 6
    assert min(trace[-2:]) < 0.95 * trace[0]
    assert result.cost <= min(trace) + 1e-6


@pytest.mark.parametrize(
    ("agent", "block"),
    [
        ((80.0, 80.0), (330.0, 330.0, 0.0)),
        ((430.0, 100.0), (180.0, 320.0, 1.2)),
        ((100.0, 420.0), (320.0, 180.0, -0.7)),
    ],
)
def test_first_action_moves_the_pusher_toward_a_far_block(
    model: WorldModel, env: gym.Env, agent: tuple[float, float], block: tuple[float, float, float]
) -> None:
    to_block = np.array(block[:2]) - np.array(agent)
    direction = to_block / np.linalg.norm(to_block)
    # The goal: the block pushed 30 px on, the pusher right behind it.
    pushed = (block[0] + 30 * direction[0], block[1] + 30 * direction[1], block[2])
    behind = (pushed[0] - 70 * direction[0], pushed[1] - 70 * direction[1])
    start, goal = _state(agent, block), _state(behind, pushed)
    # The objective the service plans push-T with when the goal proprio is sent: the
    # offline encoder's visual distance alone is flat for a pusher this far from its goal.
    objective = ObjectiveConfig(alpha=1.0)
    result = plan(
        model,
        _latent(model, env, start),
        _latent(model, env, goal),
        GradientConfig(objective=objective),
        guardrails_for(ENV_ID),
        budget=Budget(max_iterations=30),
        seed=0,
    )
    first = result.actions[0].reshape(model.frameskip, 2).sum(0).numpy()  # px / 100
    cos = float(first @ direction / (np.linalg.norm(first) + 1e-9))
    assert cos > math.cos(math.radians(60)), (first, direction)
