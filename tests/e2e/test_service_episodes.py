"""Closed loop through the real service: the shipped bundles plan episodes in every world.

A ``worldplan serve`` process on a loopback port serves ``models/``; the
evaluation harness (``clients.evaluate``) drives each sim through the HTTP API
on fixed seeds and, on the same seeds and goals, runs a random and a no-op
policy. The planner must do clearly better than both.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from clients import WorldplanClient
from clients.evaluate import EvalConfig, EvalResult, evaluate

ROOT = Path(__file__).resolve().parents[2]
KEY = "closed-loop-test-key"


@dataclass(frozen=True)
class Case:
    """One env's closed-loop check: what runs and what it must beat."""

    env: str
    episodes: int
    planner: str
    iterations: int
    samples: int
    max_steps: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "WORLDPLAN_API_KEYS": f'["{KEY}"]', "WORLDPLAN_TORCH_THREADS": "1"}
    cmd = [sys.executable, "-m", "worldplan.cli", "serve", "--models-dir", str(ROOT / "models"),
           "--port", str(port), "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"worldplan serve exited: {err[-3000:]}")
            try:
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            raise RuntimeError("worldplan serve did not become healthy in 120 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _run(service: str, case: Case) -> EvalResult:
    config = EvalConfig(
        env=case.env,
        episodes=case.episodes,
        planner=case.planner,  # type: ignore[arg-type]
        budgets=(case.iterations,),
        samples=case.samples,
        max_steps=case.max_steps,
    )
    with WorldplanClient(service, api_key=KEY, timeout_s=600) as client:
        return evaluate(client, config)


def test_umaze_plans_reach_goals_well_above_baselines(service: str) -> None:
    case = Case("umaze", episodes=6, planner="gradient", iterations=30, samples=8, max_steps=100)
    result = _run(service, case)
    planned = result.planned[0]
    random, noop = result.baselines
    # Success: within 0.5 maze units of the goal; distances in maze units, lower is better.
    assert planned.successes >= random.successes + 2, (planned, random)
    assert planned.successes >= noop.successes + 3, (planned, noop)
    assert planned.mean_final_metric < min(random.mean_final_metric, noop.mean_final_metric)


def test_granular_strokes_gather_particles_closer_than_baselines(service: str) -> None:
    case = Case("granular", episodes=4, planner="cem", iterations=5, samples=100, max_steps=5)
    result = _run(service, case)
    planned = result.planned[0]
    random, noop = result.baselines
    # Chamfer distance to the gathered goal (table units): lower is better.
    assert planned.mean_final_metric < noop.mean_final_metric - 0.1, (planned, noop)
    assert planned.mean_final_metric < random.mean_final_metric - 0.1, (planned, random)
