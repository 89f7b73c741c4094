"""The DINO-WM goal protocol: goals reached by held-out trajectories, the env restored."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import sims  # noqa: F401
from clients.goals import (
    GOAL_POLICY,
    door_y,
    episode_limit,
    make_goal,
    resolve_env,
    world,
)
from clients.seeds import EVAL_SEED_BASE, GOAL_POLICY_SEED_OFFSET, episode_seeds


def make(env_id: str, **kw: Any) -> gym.Env[Any, Any]:
    return gym.make(env_id, image_size=48, **kw)


@pytest.mark.parametrize(
    ("env_id", "kw"),
    [
        ("worldplan/PushT-v0", {}),
        ("worldplan/Maze-v0", {"layout": "umaze"}),
        ("worldplan/Maze-v0", {"layout": "tworoom", "door_y": None}),
    ],
)
def test_trajectory_goal_is_reached_by_replaying_the_held_out_policy(
    env_id: str, kw: dict[str, Any]
) -> None:
    env = make(env_id, **kw)
    inner = world(env)
    goal = make_goal(env, seed=11, goal_steps=25)
    # The env is back at the start, with the goal as its goal.
    np.testing.assert_array_equal(inner.get_state(), goal.start_state)
    np.testing.assert_array_equal(inner.goal_state, goal.goal_state)
    assert not inner.evaluate_state(goal.start_state, goal.goal_state)["is_success"]
    assert inner.evaluate_state(goal.goal_state, goal.goal_state)["is_success"]
    # Replaying the listed policy seed from the reset passes the start after the
    # burn-in and reaches the goal 25 steps later.
    assert goal.policy_seed == 11 + GOAL_POLICY_SEED_OFFSET + 1000 * goal.redraws
    obs, info = inner.reset(seed=11)
    protocol = GOAL_POLICY[env_id]
    assert protocol is not None
    policy = protocol.make(inner, goal.policy_seed)
    for _ in range(protocol.burn_in):
        obs, _, _, _, info = inner.step(policy(obs, info))
    np.testing.assert_allclose(inner.get_state(), goal.start_state)
    for _ in range(25):
        obs, _, _, _, info = inner.step(policy(obs, info))
    np.testing.assert_allclose(inner.get_state(), goal.goal_state)
    assert goal.goal_proprio is not None
    np.testing.assert_allclose(obs["proprio"], goal.goal_proprio)
    # The goal image is the goal state rendered.
    np.testing.assert_array_equal(goal.goal_image, inner.render())
    assert goal.goal_image.shape == (48, 48, 3)


def test_goals_are_deterministic_and_differ_across_seeds() -> None:
    env = make("worldplan/PushT-v0")
    a, b, c = make_goal(env, 3), make_goal(env, 3), make_goal(env, 4)
    np.testing.assert_array_equal(a.goal_state, b.goal_state)
    np.testing.assert_array_equal(a.goal_image, b.goal_image)
    assert not np.array_equal(a.goal_state, c.goal_state)


def test_harder_goals_are_farther() -> None:
    env = make("worldplan/Maze-v0", layout="tworoom")
    near = [make_goal(env, s, 25) for s in range(6)]
    far = [make_goal(env, s, 100) for s in range(6)]

    def dist(g: Any) -> float:
        return float(np.linalg.norm(g.goal_state[:2] - g.start_state[:2]))

    assert np.mean([dist(g) for g in far]) > np.mean([dist(g) for g in near])


def test_granular_goal_is_the_envs_gathered_goal() -> None:
    env = make("worldplan/Granular-v0", n_particles=24)
    inner = world(env)
    goal = make_goal(env, seed=5)
    inner.reset(seed=5)
    np.testing.assert_array_equal(goal.goal_state, inner.goal_state)
    np.testing.assert_array_equal(goal.start_state, inner.get_state())
    assert goal.goal_proprio is None
    assert goal.policy_seed is None
    assert goal.goal_steps == 0
    inner.set_state(goal.goal_state)
    np.testing.assert_array_equal(goal.goal_image, inner.render())


def test_door_y_only_for_the_two_room_maze() -> None:
    maze = make("worldplan/Maze-v0", layout="tworoom", door_y=20.0)
    assert door_y("worldplan/Maze-v0", make_goal(maze, 1)) == 20.0
    umaze = make("worldplan/Maze-v0", layout="umaze")
    assert door_y("worldplan/Maze-v0", make_goal(umaze, 1)) is None
    pusht = make("worldplan/PushT-v0")
    assert door_y("worldplan/PushT-v0", make_goal(pusht, 1)) is None


def test_episode_limit_is_the_envs_registered_time_limit() -> None:
    assert episode_limit("worldplan/PushT-v0") == 300  # gym-pusht's episode
    assert episode_limit("worldplan/Maze-v0") == 300  # D4RL's PointMaze episode
    assert episode_limit("worldplan/Granular-v0") == 20
    gym.register(id="worldplan-test/NoLimit-v0", entry_point="sims.maze:MazeEnv")
    try:
        with pytest.raises(ValueError, match="without a time limit"):
            episode_limit("worldplan-test/NoLimit-v0")
    finally:
        del gym.registry["worldplan-test/NoLimit-v0"]


def test_seeds_and_aliases() -> None:
    assert episode_seeds(100, 3) == [100, 101, 102]
    with pytest.raises(ValueError, match="episodes"):
        episode_seeds(0, 0)
    assert resolve_env("wall").env_kwargs == (("layout", "tworoom"),)
    assert resolve_env("worldplan/PushT-v0").env_id == "worldplan/PushT-v0"
    with pytest.raises(ValueError, match="unknown env 'cartpole'; known: pusht"):
        resolve_env("cartpole")


def test_pusht_goals_are_mid_trajectory_segments_at_the_reference_pace() -> None:
    """DINO-WM's goal segments come from demonstrations with action std ~0.2 per axis
    in which the pusher works at the T; ours: the scripted pusher at that pace, after
    a burn-in, so the T moves in most segments."""
    env = make("worldplan/PushT-v0")
    inner = world(env)
    protocol = GOAL_POLICY["worldplan/PushT-v0"]
    assert protocol is not None
    assert protocol.burn_in > 0
    actions, moved = [], []
    for seed in episode_seeds(EVAL_SEED_BASE, 12):
        goal = make_goal(env, seed)
        obs, info = inner.reset(seed=seed)
        policy = protocol.make(inner, goal.policy_seed or 0)
        for _ in range(protocol.burn_in + 25):
            action = policy(obs, info)
            actions.append(action)
            obs, _, _, _, info = inner.step(action)
        moved.append(np.linalg.norm(goal.goal_state[2:4] - goal.start_state[2:4]))
    std = np.asarray(actions).std(axis=0)
    assert np.all((std > 0.15) & (std < 0.25)), std
    assert np.mean(np.asarray(moved) > 5.0) >= 0.5, moved
