"""The closed-loop runner against a fake service whose planner is an oracle."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import httpx
import numpy as np
import pytest
from clients_fakes import KEY, FakeService, maze_model

import sims  # noqa: F401
from clients import MPCSession, PlanOptions, WorldplanClient
from clients.closed_loop import (
    Chunk,
    EpisodeConfig,
    NoOpController,
    RandomController,
    ServiceController,
    run_episode,
)
from clients.evaluate import EvalConfig, evaluate
from clients.goals import Goal, door_y, make_goal, world

SEEDS = range(4)


def service(fake: FakeService, layout: str, execute_steps: int | None) -> ServiceController:
    client = WorldplanClient(api_key=KEY, transport=fake.transport())
    session = MPCSession(client, PlanOptions(model=f"maze-{layout}", horizon=5))
    return ServiceController(
        session,
        "oracle",
        execute_steps,
        episode_options=lambda g: {"door_y": door_y("worldplan/Maze-v0", g)},
    )


def goals(layout: str) -> tuple[gym.Env[Any, Any], list[Goal]]:
    env = gym.make("worldplan/Maze-v0", layout=layout, image_size=32)
    return env, [make_goal(env, s) for s in SEEDS]


@pytest.mark.parametrize("layout", ["tworoom", "umaze"])
def test_service_reaches_goals_and_records_the_episode(layout: str) -> None:
    fake = FakeService([maze_model(layout)])
    env, gs = goals(layout)
    controller = service(fake, layout, execute_steps=None)
    config = EpisodeConfig(max_steps=100, record_frames=True)
    episodes = [run_episode(env, g, controller, config) for g in gs]
    for ep, g in zip(episodes, gs, strict=True):
        assert ep.success, ep
        assert ep.success_step == ep.steps <= 100
        threshold = 4.5 if layout == "tworoom" else 0.5  # the maze success distances
        assert ep.final_metric < threshold < ep.start_metric
        assert len(ep.actions) == ep.steps == len(ep.metrics)
        assert len(ep.frames) == ep.steps + 1
        # Every plan holds 25 env actions and is executed whole: plans = ceil(steps / 25).
        assert len(ep.plan_ids) == len(ep.costs) == len(ep.plan_ms) == math.ceil(ep.steps / 25)
        assert all(ms == pytest.approx(7.0) for ms in ep.plan_ms)
        assert ep.seed == g.seed
        assert ep.controller == "oracle"
        assert ep.to_json()["success"] is True
        assert "frames" not in ep.to_json()
    # Each request carried the observation the env showed and the goal image.
    plans = [s for s in fake.seen if s.path == "/v1/plan"]
    np.testing.assert_array_equal(plans[0].goal, gs[0].goal_image)
    assert plans[0].options["seed"] == gs[0].seed


def test_execute_steps_replans_after_k_planning_steps_with_warm_start() -> None:
    fake = FakeService([maze_model("tworoom")])
    env, gs = goals("tworoom")
    controller = service(fake, "tworoom", execute_steps=1)
    ep = run_episode(env, gs[0], controller, EpisodeConfig(max_steps=100))
    assert ep.success
    assert len(ep.plan_ids) == math.ceil(ep.steps / 5)
    plans = [s.options for s in fake.seen if s.path == "/v1/plan"]
    assert "warm_start" not in plans[0]
    assert all(p["warm_start"]["executed_steps"] == 1 for p in plans[1:])
    assert [p["warm_start"]["token"] for p in plans[1:]] == ep.plan_ids[:-1]


def test_step_limit_ends_a_failing_episode() -> None:
    env, gs = goals("tworoom")
    ep = run_episode(env, gs[0], NoOpController(5), EpisodeConfig(max_steps=12))
    assert not ep.success
    assert ep.steps == 12
    assert len(ep.plan_ids) == 3
    assert ep.final_metric == pytest.approx(ep.start_metric)


def test_baselines_are_worse_than_the_oracle_on_the_same_seeds() -> None:
    fake = FakeService([maze_model("tworoom")])
    with WorldplanClient(api_key=KEY, transport=fake.transport()) as client:
        result = evaluate(client, EvalConfig(env="tworoom", episodes=len(SEEDS), seed=0))
    planned, (rand, noop) = result.planned[0], result.baselines
    assert planned.success_rate == 1.0
    assert rand.success_rate < planned.success_rate
    assert noop.success_rate < planned.success_rate
    assert rand.mean_final_metric > planned.mean_final_metric
    assert noop.mean_final_metric > planned.mean_final_metric
    by_name: dict[str, list[int]] = {}
    for ep in result.episodes:
        by_name.setdefault(ep.controller, []).append(ep.seed)
    assert all(seeds == list(SEEDS) for seeds in by_name.values())
    assert planned.mean_plan_ms == pytest.approx(7.0)
    assert rand.mean_plan_ms is None


def test_random_controller_is_seeded_per_episode() -> None:
    env, gs = goals("umaze")
    a, b = RandomController(5), RandomController(5)
    a.reset(env, gs[0])
    b.reset(env, gs[0])
    chunk: Chunk = a.act({})
    np.testing.assert_array_equal(chunk.actions, b.act({}).actions)
    assert chunk.actions.shape == (5, 2)
    assert np.all(np.abs(chunk.actions) <= 1)


def test_granular_noop_leaves_the_pile_alone() -> None:
    env = gym.make("worldplan/Granular-v0", n_particles=24, image_size=32)
    goal = make_goal(env, 2)
    ep = run_episode(env, goal, NoOpController(1), EpisodeConfig(max_steps=3))
    assert ep.steps == 3
    assert not ep.success
    assert ep.metrics == pytest.approx([ep.start_metric] * 3)
    np.testing.assert_array_equal(world(env).get_state(), goal.start_state)


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        EpisodeConfig(max_steps=0)
    with pytest.raises(ValueError, match="execute_steps"):
        service(FakeService(), "tworoom", execute_steps=0)
    with pytest.raises(ValueError, match="budgets"):
        EvalConfig(env="pusht", episodes=1, budgets=(0,))
    with pytest.raises(ValueError, match="replan_horizon"):
        EvalConfig(env="pusht", episodes=1, replan_horizon=17)


def test_replan_horizon_defaults_per_env_and_zero_turns_it_off() -> None:
    pusht, maze = "worldplan/PushT-v0", "worldplan/Maze-v0"
    assert EvalConfig(env="pusht", episodes=1).replan_horizon_for(pusht) == 10
    assert EvalConfig(env="tworoom", episodes=1).replan_horizon_for(maze) is None
    assert EvalConfig(env="pusht", episodes=1, replan_horizon=0).replan_horizon_for(pusht) is None
    assert EvalConfig(env="tworoom", episodes=1, replan_horizon=8).replan_horizon_for(maze) == 8


class RefusingService(FakeService):
    """Refuses the first ``refusals`` plans (a failed final guardrail check), then plans."""

    def __init__(self, refusals: int) -> None:
        super().__init__([maze_model("tworoom")])
        self.refusals = refusals

    def _plan(self, request: Any, seen: Any) -> Any:
        if self.refusals > 0:
            self.refusals -= 1
            self._read(request, seen)
            detail = "plan refused by the final guardrail check: agent breaks workspace.x_max"
            return httpx.Response(422, json={"detail": detail})
        return super()._plan(request, seen)


def test_a_refused_plan_holds_still_then_replans_with_the_next_seed() -> None:
    fake = RefusingService(refusals=2)
    env, gs = goals("tworoom")
    controller = service(fake, "tworoom", execute_steps=None)
    ep = run_episode(env, gs[0], controller, EpisodeConfig(max_steps=100))
    assert ep.success
    assert len(ep.refusals) == 2
    assert all("workspace" in r for r in ep.refusals)
    assert ep.actions[:2] == [[], []]  # held still while refused
    seeds = [s.options["seed"] for s in fake.seen if s.path == "/v1/plan"]
    assert seeds[:3] == [gs[0].seed, gs[0].seed + 1, gs[0].seed + 2]


def test_other_bad_requests_still_raise() -> None:
    fake = FakeService([maze_model("tworoom")])
    env, gs = goals("tworoom")
    client = WorldplanClient(api_key=KEY, transport=fake.transport())
    session = MPCSession(client, PlanOptions(model="no-such-model", horizon=5))
    controller = ServiceController(session, "bad")
    with pytest.raises(Exception, match="unknown model"):
        run_episode(env, gs[0], controller, EpisodeConfig(max_steps=10))
