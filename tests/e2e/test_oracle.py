"""The loop's upper bound: CEM over the true simulator with a shipped bundle's cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clients.goals import make_goal
from world_model.bundle import read_manifest
from worldplan.oracle import OracleConfig, OracleController, evaluate_oracle, state_error

ROOT = Path(__file__).resolve().parents[2]


def test_oracle_reaches_umaze_goals_that_no_op_does_not() -> None:
    config = OracleConfig(horizon=5, samples=40, iterations=4, proprio_weight=1.0)
    result = evaluate_oracle(ROOT / "models" / "maze-umaze", config, episodes=3)
    summary = result["summary"]
    assert summary["successes"] == 3, summary
    for ep in result["episodes"]:
        assert ep["success_step"] is not None
        assert ep["start_metric"] > 0.5  # the start was not already a success
        assert all(ms is not None and ms > 0 for ms in ep["plan_ms"])
    assert result["seeds"] == [100000, 100001, 100002]


def test_oracle_plans_stay_in_the_action_box_and_fill_the_horizon() -> None:
    controller = OracleController(
        ROOT / "models" / "maze-umaze", OracleConfig(samples=8, iterations=2)
    )
    env = controller.make_env()
    goal = make_goal(env, 100000)
    controller.reset(env, goal)
    obs, _ = env.unwrapped.reset(seed=goal.seed, options=goal.reset_options())
    chunk = controller.act(obs)
    assert chunk.actions.shape == (5 * controller.frameskip, 2)
    assert np.all(np.abs(chunk.actions) <= 1.0)
    assert chunk.cost is not None
    assert np.isfinite(chunk.cost)


def test_oracle_warm_starts_as_the_service_session_does() -> None:
    bundle = ROOT / "models" / "maze-umaze"
    controller = OracleController(bundle, OracleConfig(samples=8, iterations=2))
    env = controller.make_env()
    goal = make_goal(env, 100001)
    controller.reset(env, goal)
    obs, _ = env.unwrapped.reset(seed=goal.seed, options=goal.reset_options())
    mu, std = controller.initial_search()
    assert not mu.any()  # cold: the data's mean action...
    assert np.all(std == 1.0)  # ...with spread 1
    fs = controller.frameskip
    plan = controller.act(obs).actions.reshape(5, -1)  # (H, fs * A) env units
    controller.executed(2 * fs)
    mu, std = controller.initial_search()
    stats = read_manifest(bundle)["normalisation"]
    shifted = np.concatenate([plan[2:], plan[-1:], plan[-1:]])  # as the service's shift_plan
    norm = (shifted - np.asarray(stats["action_mean"])) / np.asarray(stats["action_std"])
    assert np.allclose(mu, norm, atol=1e-5)
    assert np.all(std == 0.3)  # the service's warm spread
    controller.reset(env, goal)  # a new episode plans cold again
    assert not controller.initial_search()[0].any()
    cold = OracleController(bundle, OracleConfig(samples=8, iterations=2, warm_start=False))
    cold.reset(env, goal)
    cold.act(obs)
    cold.executed(2 * fs)
    assert not cold.initial_search()[0].any()


@pytest.mark.parametrize(
    ("field", "value"),
    [("samples", 1), ("iterations", 0), ("proprio_weight", -1.0), ("init_std", 0.0)],
)
def test_oracle_config_refuses_bad_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        OracleConfig(**{field: value})  # type: ignore[arg-type]


def test_oracle_noise_is_coloured_along_env_steps_per_action_dim() -> None:
    bundle = ROOT / "models" / "maze-umaze"
    config = OracleConfig(samples=4000, iterations=1, noise_beta=2.0, keep_elites=0.3)
    controller = OracleController(bundle, config)
    fs = controller.frameskip
    eps = controller._noise((5, 2 * fs)).reshape(4000, 5 * fs, 2)  # (S, env steps, A)
    assert np.allclose(eps.std(0), 1.0, atol=0.06)
    lag1 = (eps[:, :-1] * eps[:, 1:]).mean(0)  # (env steps - 1, A)
    assert np.all(lag1 > 0.6)  # every pair of neighbouring env steps, planning-step edges too
    assert abs((eps[..., 0] * eps[..., 1]).mean()) < 0.05  # the two axes are independent
    assert OracleConfig(keep_elites=0.3).cem().kept == 3  # 0.3 of 100 samples' 10 elites


@pytest.mark.parametrize(
    ("env_id", "layout", "inside", "outside"),
    [
        ("worldplan/PushT-v0", "", {"pos_error": 19.9, "angle_error": 0.0}, {"pos_error": 20.1}),
        ("worldplan/PushT-v0", "", {"pos_error": 0.0, "angle_error": 0.34}, {"angle_error": 0.36}),
        ("worldplan/Maze-v0", "tworoom", {"distance": 4.4}, {"distance": 4.6}),
        ("worldplan/Maze-v0", "umaze", {"distance": 0.49}, {"distance": 0.51}),
        ("worldplan/Granular-v0", "", {"chamfer": 0.24}, {"chamfer": 0.26}),
    ],
)
def test_state_error_crosses_one_at_the_success_threshold(
    env_id: str, layout: str, inside: dict[str, float], outside: dict[str, float]
) -> None:
    assert state_error(env_id, layout, inside) < 1.0
    assert state_error(env_id, layout, {**inside, **outside}) > 1.0


def test_state_cost_oracle_reaches_umaze_goals() -> None:
    config = OracleConfig(samples=40, iterations=4, cost="state")
    result = evaluate_oracle(ROOT / "models" / "maze-umaze", config, episodes=2, max_steps=50)
    assert result["summary"]["successes"] == 2, result["summary"]
    assert result["config"]["cost"] == "state"
    with pytest.raises(ValueError, match="no state cost"):
        state_error("worldplan/Other-v0", "", {})
    with pytest.raises(ValueError, match="cost must be"):
        OracleConfig(cost="pixels")  # type: ignore[arg-type]
