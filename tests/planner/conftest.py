"""Shared fixtures: the analytic point-mass model and push-T guardrails."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from planner import Budget, Guardrails, PlanRequest, guardrails_for
from planner.analytic import PointMassModel

RequestFactory = Callable[..., PlanRequest]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def model() -> PointMassModel:
    return PointMassModel()


@pytest.fixture
def rails() -> Guardrails:
    return guardrails_for("worldplan/PushT-v0")


@pytest.fixture
def request_for(model: PointMassModel, rails: Guardrails) -> RequestFactory:
    """Build a request from a start and goal position in px."""

    def make(
        start: tuple[float, float],
        goal: tuple[float, float],
        *,
        budget: Budget | None = None,
        seed: int = 0,
        guardrails: Guardrails | None = None,
        init: torch.Tensor | None = None,
    ) -> PlanRequest:
        return PlanRequest(
            z_obs=model.encode(torch.tensor([[start]])),
            z_goal=model.encode(torch.tensor([[goal]])),
            guardrails=guardrails or rails,
            budget=budget or Budget(),
            seed=seed,
            init=init,
        )

    return make
