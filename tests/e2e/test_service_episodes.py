"""Closed loop through the real service: the shipped bundles plan episodes in every world.

A server process on a loopback port (``server.bench.ServerProcess``: the app
``worldplan serve`` runs, under uvicorn) serves ``models/``; the
evaluation harness (``clients.evaluate``) drives each sim through the HTTP API
on fixed seeds and, on the same seeds and goals, runs a random and a no-op
policy. The planner must do clearly better than both. The service's default proprio
weight applies (the harness sends the goal proprio).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clients import WorldplanClient
from clients.evaluate import EvalConfig, evaluate
from clients.stats import Summary
from server.bench import ServerProcess

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    """One env's closed-loop check: what runs and what it must beat."""

    env: str
    episodes: int
    planner: str
    iterations: int
    samples: int
    max_steps: int


@pytest.fixture(scope="module")
def service() -> Iterator[ServerProcess]:
    settings = {"WORLDPLAN_TORCH_THREADS": "1"}
    with ServerProcess(tiny=False, models_dir=ROOT / "models", settings=settings) as server:
        yield server


def _run(service: ServerProcess, case: Case) -> tuple[Summary, Summary, Summary]:
    """The planner's summary, then random's and no-op's on the same seeds and goals."""
    config = EvalConfig(
        env=case.env,
        episodes=case.episodes,
        planner=case.planner,  # type: ignore[arg-type]
        budgets=(case.iterations,),
        samples=case.samples,
        max_steps=case.max_steps,
    )
    with WorldplanClient(service.url, api_key=service.key, timeout_s=600) as client:
        result = evaluate(client, config)
    random, noop = result.baselines
    return result.planned[0], random, noop


def test_umaze_plans_reach_goals_well_above_baselines(service: ServerProcess) -> None:
    case = Case("umaze", episodes=6, planner="gradient", iterations=30, samples=8, max_steps=100)
    planned, random, noop = _run(service, case)
    # Success: within 0.5 maze units of the goal; distances in maze units, lower is better.
    assert planned.successes >= random.successes + 2, (planned, random)
    assert planned.successes >= noop.successes + 3, (planned, noop)
    assert planned.mean_final_metric < min(random.mean_final_metric, noop.mean_final_metric)


def test_pusht_plans_reach_goals_well_above_baselines(service: ServerProcess) -> None:
    case = Case("pusht", episodes=6, planner="gradient", iterations=30, samples=8, max_steps=100)
    planned, random, noop = _run(service, case)
    # Success: pusher and T within 20 px (joint) and pi/9 of the goal's, at any step.
    assert planned.successes >= random.successes + 2, (planned, random)
    assert planned.successes >= noop.successes + 2, (planned, noop)


def test_tworoom_plans_cross_the_door_well_above_baselines(service: ServerProcess) -> None:
    case = Case("tworoom", episodes=6, planner="cem", iterations=10, samples=100, max_steps=100)
    planned, random, noop = _run(service, case)
    # Nearly every goal is in the other room; success: within 4.5 px; distances in px.
    assert planned.successes >= random.successes + 2, (planned, random)
    assert planned.successes >= noop.successes + 2, (planned, noop)
    baseline = min(random.mean_final_metric, noop.mean_final_metric)
    assert planned.mean_final_metric < 0.6 * baseline, (planned, random, noop)


def test_granular_strokes_gather_particles_closer_than_baselines(service: ServerProcess) -> None:
    case = Case("granular", episodes=4, planner="cem", iterations=5, samples=100, max_steps=5)
    planned, random, noop = _run(service, case)
    # Chamfer distance to the gathered goal (table units): lower is better.
    assert planned.mean_final_metric < noop.mean_final_metric - 0.1, (planned, noop)
    assert planned.mean_final_metric < random.mean_final_metric - 0.1, (planned, random)
