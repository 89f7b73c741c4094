"""``plan`` and ``plan_batch``: one interface over CEM, MPPI and gradient planning.

The planner is a pure function of (model, observation, goal, guardrails, budget,
seed): no logging, no simulator, no I/O. The only clock use is the wall-time
budget, through an injectable ``clock``.

Shapes: R requests, H horizon, A planning-action dim, Ds probed state dim.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from planner.budget import BudgetTracker
from planner.cem import CEM
from planner.check import check_plan
from planner.config import Budget, CEMConfig, GradientConfig, MPPIConfig, OptimiserConfig
from planner.gradient import Gradient
from planner.guardrails import Guardrails
from planner.mppi import MPPI
from planner.problem import Problem
from planner.types import Plan, PlanRefused, PlanRequest, Refusal
from world_model.types import Latent, LatentModel

Clock = Callable[[], float]
"""Seconds, monotonic (``time.perf_counter`` unless a test injects one)."""
Optimiser = CEM | MPPI | Gradient


def make_optimiser(config: OptimiserConfig, problem: Problem) -> Optimiser:
    """The optimiser a config describes."""
    if isinstance(config, CEMConfig):
        return CEM(config, problem)
    if isinstance(config, MPPIConfig):
        return MPPI(config, problem)
    if isinstance(config, GradientConfig):
        return Gradient(config, problem)
    raise TypeError(f"config must be CEMConfig, MPPIConfig or GradientConfig, got {config!r}")


def plan_batch(
    model: LatentModel,
    requests: Sequence[PlanRequest],
    config: OptimiserConfig,
    clock: Clock = time.perf_counter,
) -> list[Plan | Refusal]:
    """Plan for R independent requests with one model call per iteration.

    Each request has its own guardrails, budget, seed and warm start; a request
    that has spent its budget leaves the batch, the others go on. Every request
    gets the same result as it would alone (up to the wall-time budget).

    Returns:
        Per request, a :class:`Plan` that passed the final guardrail check, or a
        :class:`Refusal` naming each broken bound and by how much.
    """
    problem = Problem(model, requests, config.objective, config.horizon)
    optimiser = make_optimiser(config, problem)
    trackers = [BudgetTracker(r.budget) for r in requests]
    best_cost = torch.full_like(problem.init[:, 0, 0], torch.inf)  # (R,)
    best_actions = problem.init.clone()  # (R, H, A)
    start = clock()
    active = list(range(problem.size))
    while active:
        rows = torch.tensor(active, device=problem.device)
        actions, cost = optimiser.step(rows)  # (R', S, H, A), (R', S)
        it_cost, it_idx = cost.min(dim=1)  # (R',)
        better = it_cost < best_cost[rows]
        best_cost[rows] = torch.where(better, it_cost, best_cost[rows])
        picked = actions[torch.arange(len(active), device=problem.device), it_idx]  # (R', H, A)
        best_actions[rows] = torch.where(better[:, None, None], picked, best_actions[rows])
        elapsed_ms = (clock() - start) * 1000.0
        for j, r in enumerate(active):
            trackers[r].record(float(it_cost[j]), float(best_cost[r]), elapsed_ms)
        active = [r for r in active if not trackers[r].done]
    final = torch.stack([optimiser.candidate(), best_actions], dim=1)  # (R, 2, H, A)
    return _finish(model, requests, problem, final=final, trackers=trackers, name=optimiser.name)


@torch.no_grad()
def _finish(
    model: LatentModel,
    requests: Sequence[PlanRequest],
    problem: Problem,
    *,
    final: Tensor,
    trackers: list[BudgetTracker],
    name: str,
) -> list[Plan | Refusal]:
    """Score both candidates per request, keep the cheaper one, check it in physical units."""
    rows = torch.arange(problem.size, device=problem.device)
    ev = problem.evaluate(final, rows)
    pick = ev.cost.argmin(dim=1)  # (R,)
    out: list[Plan | Refusal] = []
    for r, req in enumerate(requests):
        k, t = int(pick[r]), trackers[r]
        actions, states = final[r, k].detach(), ev.states[r, k].detach()
        stopped = t.stopped_because or "max_iterations"
        violations = check_plan(
            req.guardrails, actions, model.frameskip, states, model.state_labels
        )
        if violations:
            out.append(
                Refusal(tuple(violations), float(ev.cost[r, k]), len(t.trace), stopped, name)
            )
            continue
        out.append(
            Plan(
                actions=actions,
                cost=float(ev.cost[r, k]),
                objective=float(ev.objective[r, k]),
                states=states,
                trace=tuple(t.trace),
                trace_ms=tuple(t.trace_ms),
                iterations=len(t.trace),
                stopped_because=stopped,
                elapsed_ms=t.elapsed_ms,
                optimiser=name,
                warm_started=req.init is not None,
            )
        )
    return out


def plan(
    model: LatentModel,
    z_obs: Latent,
    z_goal: Latent,
    config: OptimiserConfig,
    guardrails: Guardrails,
    *,
    budget: Budget | None = None,
    init: Tensor | None = None,
    seed: int = 0,
    clock: Clock = time.perf_counter,
) -> Plan:
    """Plan for one request; see :func:`plan_batch`.

    Raises:
        PlanRefused: when the best plan breaks a hard bound (it says which, by how much).
    """
    request = PlanRequest(z_obs, z_goal, guardrails, budget or Budget(), seed, init)
    (result,) = plan_batch(model, [request], config, clock)
    if isinstance(result, Refusal):
        raise PlanRefused(result)
    return result
