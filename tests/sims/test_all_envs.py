"""The Gymnasium contract, checked over every registered worldplan env."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sims
from sims.base import WorldEnv
from sims.policies import make_policy

IDS = sims.ENV_IDS


@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id: str) -> None:
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_pixels_over_100_steps(env_id: str) -> None:
    def run() -> list[np.ndarray]:
        env = gym.make(env_id)
        obs, _ = env.reset(seed=123)
        env.action_space.seed(7)
        frames = [obs["pixels"]]
        for _ in range(100):
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            frames.append(obs["pixels"])
            if terminated or truncated:
                obs, _ = env.reset(seed=124)
        env.close()
        return frames

    first, second = run(), run()
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("env_id", IDS)
def test_pickle_round_trip_keeps_state(env_id: str) -> None:
    env = gym.make(env_id)
    env.reset(seed=3)
    env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    np.testing.assert_allclose(clone.unwrapped.get_state(), env.unwrapped.get_state())
    action = env.action_space.sample()
    obs_a, *_ = env.step(action)
    obs_b, *_ = clone.step(action)
    np.testing.assert_array_equal(obs_a["pixels"], obs_b["pixels"])


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("size", [64, 224])
def test_render_shape_and_dtype(env_id: str, size: int) -> None:
    env = gym.make(env_id, image_size=size)
    obs, info = env.reset(seed=0)
    frame = env.render()
    assert isinstance(frame, np.ndarray)
    assert frame.shape == (size, size, 3)
    assert frame.dtype == np.uint8
    assert obs["pixels"].shape == (size, size, 3)
    assert obs["proprio"].dtype == np.float32
    assert "is_success" in info
    assert env.unwrapped.metric_name in info


@pytest.mark.parametrize("env_id", IDS)
def test_goal_state_reports_success(env_id: str) -> None:
    env = gym.make(env_id)
    env.reset(seed=11)
    inner = env.unwrapped
    assert isinstance(inner, WorldEnv)
    inner.set_state(inner.goal_state)
    scores = inner.evaluate_state(inner.get_state(), inner.goal_state)
    assert scores["is_success"] is True


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("bad", [np.zeros(7), np.full(1, np.nan), "left"])
def test_bad_actions_raise(env_id: str, bad: object) -> None:
    env = gym.make(env_id)
    env.reset(seed=0)
    before = env.unwrapped.get_state().copy()
    shape = env.action_space.shape
    if isinstance(bad, np.ndarray) and np.isnan(bad).any():
        bad = np.full(shape, np.nan)
    with pytest.raises(ValueError, match="action"):
        env.step(bad)
    np.testing.assert_array_equal(env.unwrapped.get_state(), before)


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("kind", ["scripted", "random"])
def test_policies_give_valid_actions(env_id: str, kind: str) -> None:
    env = gym.make(env_id)
    obs, info = env.reset(seed=5)
    policy = make_policy(env, kind, seed=5)  # type: ignore[arg-type]
    for _ in range(20):
        action = policy(obs, info)
        assert env.action_space.contains(action), action
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
