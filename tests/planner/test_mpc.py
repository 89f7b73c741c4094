"""The receding-horizon loop closes the gap on a world the model gets slightly wrong."""

from __future__ import annotations

import pytest
import torch

from planner import Budget, CEMConfig, Guardrails, ObjectiveConfig
from planner.analytic import PointMassModel
from planner.mpc import RecedingHorizon


def test_mpc_reaches_the_goal_with_model_error(model: PointMassModel, rails: Guardrails) -> None:
    mpc = RecedingHorizon(
        CEMConfig(samples=100, elites=10, objective=ObjectiveConfig(frames="all")),
        rails,
        budget=Budget(max_iterations=30, patience=3, rtol=0.05),
        execute_steps=1,
    )
    position, goal = torch.tensor([100.0, 100.0]), torch.tensor([400.0, 300.0])
    z_goal = model.encode(goal[None, None])
    iterations = []
    for step in range(8):
        p = mpc.act(model, model.encode(position[None, None]), z_goal, seed=step)
        assert p.warm_started == (step > 0)
        iterations.append(p.iterations)
        # The real world moves only 85 % as far as the model imagines.
        position = position + 0.85 * p.actions[0].reshape(-1, 2).sum(0) * model.scale
    assert (position - goal).norm().item() < 3.0
    assert sum(iterations[1:]) / len(iterations[1:]) < iterations[0]
    mpc.reset()
    assert mpc.previous is None


def test_execute_steps_must_fit_the_horizon(rails: Guardrails) -> None:
    with pytest.raises(ValueError, match=r"execute_steps must be in \[1, horizon=5\]"):
        RecedingHorizon(CEMConfig(), rails, execute_steps=6)
