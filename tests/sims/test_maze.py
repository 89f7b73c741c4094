"""Behaviour of worldplan/Maze-v0 in both layouts: walls, dynamics, state, seeding, policies."""

from __future__ import annotations

import math
import pickle
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sims  # noqa: F401  (registers the envs)
from sims.maze import UMAZE_OVERLAP_TOLERANCE, MazeEnv
from sims.maze_layouts import UMAZE_SPEC, umaze_free_cells, umaze_path
from sims.maze_physics import UMAZE_DAMPING, UMAZE_GEAR, UMAZE_MASS
from sims.policies import make_policy
from sims.policies.maze import RandomPolicy, ScriptedPolicy

LAYOUTS = ["umaze", "tworoom"]
DIRECTIONS = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)]


def make(layout: str, **kwargs: object) -> MazeEnv:
    return MazeEnv(layout=layout, image_size=64, **kwargs)  # type: ignore[arg-type]


def tolerance(env: MazeEnv) -> float:
    """How far the agent's disc may overlap a wall (contact resolution in the U-maze)."""
    return UMAZE_OVERLAP_TOLERANCE if env.layout.name == "umaze" else 0.0


def assert_move_in_free_space(env: MazeEnv, a: np.ndarray, b: np.ndarray) -> None:
    """Both ends, and the centre's path between them, lie in free space."""
    radius = env.layout.agent_radius - tolerance(env)
    assert env.free(b[0], b[1], radius), f"{env.layout.name}: state {b} overlaps a wall"
    path = a[None, :] + np.linspace(0.0, 1.0, 41)[:, None] * (b - a)[None, :]
    assert np.all(env.free(path[:, 0], path[:, 1], 0.0)), f"move {a} -> {b} crossed a wall"


# ----------------------------------------------------------------------------- walls


@pytest.mark.parametrize("layout", LAYOUTS)
def test_full_speed_for_1000_steps_never_enters_a_wall(layout: str) -> None:
    env = make(layout)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    pos = env.get_state()[:2]
    touched = math.inf
    # 500 steps pushing straight along each axis and diagonal, 500 along random directions.
    actions = [np.array(d, dtype=np.float32) for d in DIRECTIONS for _ in range(63)][:500]
    for _ in range(50):
        angle = rng.uniform(0.0, 2.0 * math.pi)
        full = np.array([math.cos(angle), math.sin(angle)])
        actions += [(full / np.abs(full).max()).astype(np.float32)] * 10
    assert len(actions) == 1000
    for action in actions:
        _, _, _, _, info = env.step(action)
        new = info["state"][:2]
        assert_move_in_free_space(env, pos, new)
        touched = min(touched, float(env.layout.clearance(new[0], new[1])))
        pos = new
    # The run really pressed against walls (so the check above was exercised).
    assert touched < env.layout.agent_radius + (0.01 if layout == "umaze" else 1.0)


@pytest.mark.parametrize("direction", [(1, 0), (-1, 0), (0, 1), (0, -1)])
def test_umaze_pushing_into_each_wall_stops_at_it(direction: tuple[int, int]) -> None:
    env = make("umaze")
    env.reset(seed=0)
    for cell in umaze_free_cells():
        env.set_state(np.array([cell[0], cell[1], 0.0, 0.0, 0.0, 0.0, 0.0]))
        for _ in range(60):
            _, _, _, _, info = env.step(np.array(direction, dtype=np.float32))
        x, y = info["state"][:2]
        last = cell  # the last free cell along the push: the wall after it must hold
        while UMAZE_SPEC[last[0] + direction[0]][last[1] + direction[1]] != "#":
            last = (last[0] + direction[0], last[1] + direction[1])
        assert (round(x), round(y)) == last
        gap = float(env.layout.clearance(x, y)) - env.layout.agent_radius
        assert -UMAZE_OVERLAP_TOLERANCE < gap < 1e-3, (cell, direction, gap)


def test_tworoom_move_into_the_wall_stops_half_a_pixel_before_it() -> None:
    env = make("tworoom", wall_x=32.0, door_y=20.0)
    env.reset(seed=0, options={"state": [20.0, 45.0]})
    for _ in range(20):
        _, _, _, _, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
    np.testing.assert_allclose(info["state"][:2], [32.0 - 3.0 - 0.5, 45.0], atol=1e-9)
    # Through the door the same push crosses into the other room.
    env.reset(seed=0, options={"state": [20.0, 20.0]})
    for _ in range(20):
        _, _, _, _, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
    assert info["state"][0] > 40.0
    # The border stops it too; a diagonal push keeps only the part of the move before the wall.
    np.testing.assert_allclose(info["state"][:2], [59.5, 20.0], atol=1e-9)
    for _ in range(20):
        _, _, _, _, info = env.step(np.array([1.0, 1.0], dtype=np.float32))
    np.testing.assert_allclose(info["state"][:2], [59.5, 30.0], atol=1e-9)
    for _ in range(30):
        _, _, _, _, info = env.step(np.array([0.0, 1.0], dtype=np.float32))
    np.testing.assert_allclose(info["state"][:2], [59.5, 59.5], atol=1e-9)


def test_free_space_queries_match_the_layouts() -> None:
    umaze = make("umaze")
    assert umaze.free(1.0, 1.0)
    assert umaze.free(2.0, 3.0)
    assert not umaze.free(2.0, 1.0)
    assert not umaze.free(2.0, 2.0)
    assert not umaze.free(0.0, 2.0)
    # The centre is free but the agent's disc (radius 0.1) would overlap the wall at y = 3.5.
    assert not umaze.free(1.0, 3.45)
    assert umaze.free(1.0, 3.45, radius=0.0)
    two = make("tworoom", wall_x=30.0, door_y=40.0)
    assert two.free(10.0, 10.0)
    assert two.free(30.0, 40.0)
    assert two.free(30.0, 43.9)
    assert not two.free(30.0, 30.0)
    assert not two.free(3.0, 30.0)
    assert not two.free(30.0, 44.5)
    assert two.walls.shape == (6, 4)


# ----------------------------------------------------------------------------- dynamics


def test_umaze_force_damping_and_speed_clip_follow_the_reference() -> None:
    env = make("umaze")
    env.reset(seed=0, options={"state": [3.0, 1.0, 0.0, 0.0]})
    _, _, _, _, info = env.step(np.array([0.0, 1.0], dtype=np.float32))
    # v(t) = F / c (1 - exp(-c t / m)) after 0.05 s of force 100, damping 1, mass 4.19.
    expected = UMAZE_GEAR / UMAZE_DAMPING * (1.0 - math.exp(-UMAZE_DAMPING * 0.05 / UMAZE_MASS))
    assert info["state"][3] == pytest.approx(expected, rel=0.01)
    assert info["state"][2] == pytest.approx(0.0, abs=1e-12)
    env.reset(seed=0, options={"state": [3.0, 1.0, 0.0, 8.0]})
    _, _, _, _, info = env.step(np.zeros(2, dtype=np.float32))
    assert 4.9 < info["state"][3] <= 5.0  # clipped to 5, then damped


def test_tworoom_moves_twice_the_action_and_reports_it_as_velocity() -> None:
    env = make("tworoom", wall_x=32.0, door_y=32.0)
    env.reset(seed=0, options={"state": [15.0, 30.0]})
    obs, _, _, _, info = env.step(np.array([0.5, -0.25], dtype=np.float32))
    np.testing.assert_allclose(info["state"][:4], [16.0, 29.5, 1.0, -0.5])
    np.testing.assert_allclose(obs["proprio"], [16.0, 29.5, 1.0, -0.5])


# ----------------------------------------------------------------------------- state


@pytest.mark.parametrize("layout", LAYOUTS)
def test_state_round_trip_and_goal_success(layout: str) -> None:
    env = make(layout)
    env.reset(seed=4)
    for _ in range(7):
        env.step(np.array([0.7, -0.3], dtype=np.float32))
    state = env.get_state()
    assert state.shape == (len(env.state_labels),)
    assert state.dtype == np.float64
    env.step(np.array([1.0, 1.0], dtype=np.float32))
    env.set_state(state)
    np.testing.assert_array_equal(env.get_state(), state)
    env.set_state(env.goal_state)
    scores = env.evaluate_state(env.get_state(), env.goal_state)
    assert scores["is_success"] is True
    assert scores["distance"] == 0.0
    _, _, _, _, info = env.step(np.zeros(2, dtype=np.float32))
    assert info["is_success"]
    assert info["distance"] < env.layout.success_distance
    assert env.evaluate_state(info["state"], env.goal_state) == {
        "is_success": info["is_success"],
        "distance": info["distance"],
    }


@pytest.mark.parametrize("layout", LAYOUTS)
def test_set_state_rejects_bad_states_and_keeps_the_old_one(layout: str) -> None:
    env = make(layout)
    env.reset(seed=1)
    before = env.get_state()
    inside_wall = before.copy()
    inside_wall[:2] = [2.0, 2.0] if layout == "umaze" else [before[5], 5.0]
    for bad in (inside_wall, before[:5], np.full_like(before, np.nan), ["a"] * 7):
        with pytest.raises(ValueError, match="state"):
            env.set_state(bad)  # type: ignore[arg-type]
        np.testing.assert_array_equal(env.get_state(), before)


def test_set_state_of_the_other_layout_switches_walls() -> None:
    env = make("umaze")
    env.reset(seed=0)
    env.set_state(np.array([10.0, 12.0, 0.0, 0.0, 1.0, 25.0, 50.0]))
    assert env.layout.name == "tworoom"
    assert env.layout.door_y == 50.0
    np.testing.assert_array_equal(env.get_state(), [10.0, 12.0, 0.0, 0.0, 1.0, 25.0, 50.0])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_pickle_while_pressed_into_a_wall_steps_identically(layout: str) -> None:
    env = make(layout)
    env.reset(seed=2)
    push = np.array([1.0, 0.3], dtype=np.float32)
    for _ in range(40):
        env.step(push)
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(20):
        a = env.step(push)
        b = clone.step(push)
        np.testing.assert_array_equal(a[4]["state"], b[4]["state"])
        np.testing.assert_array_equal(a[0]["pixels"], b[0]["pixels"])


# ----------------------------------------------------------------------------- seeding, layouts


def test_door_position_is_drawn_from_the_seed() -> None:
    env = make("tworoom", door_y=None)
    doors = []
    for seed in range(20):
        env.reset(seed=seed)
        door = env.layout.door_y
        env.reset(seed=seed)
        assert env.layout.door_y == door
        assert 10 <= door <= 54
        assert door == int(door)
        doors.append(door)
    assert len(set(doors)) >= 8
    fixed = make("tworoom", door_y=17.0)
    assert {fixed.reset(seed=s)[1]["state"][6] for s in range(5)} == {17.0}
    env.reset(seed=0, options={"door_y": 44})
    assert env.layout.door_y == 44.0


@pytest.mark.parametrize("layout", LAYOUTS)
def test_starts_and_goals_are_free_and_tworoom_puts_them_in_opposite_rooms(layout: str) -> None:
    env = make(layout, door_y=None)
    for seed in range(30):
        _, info = env.reset(seed=seed)
        start, goal = info["state"], env.goal_state
        for s in (start, goal):
            assert env.free(s[0], s[1], env.layout.agent_radius)
        if layout == "tworoom":
            assert np.sign(start[0] - start[5]) != np.sign(goal[0] - goal[5])
        assert not info["is_success"]


def test_layout_switch_keeps_spaces_and_seeded_pixels() -> None:
    env = gym.make("worldplan/Maze-v0", image_size=64)
    obs_u, _ = env.reset(seed=3)
    obs_t, info = env.reset(seed=3, options={"layout": "tworoom"})
    assert info["layout"] == "tworoom"
    for obs in (obs_u, obs_t):
        assert env.observation_space.contains(obs)
    assert obs_u["pixels"].shape == obs_t["pixels"].shape

    def frames() -> list[np.ndarray]:
        e = gym.make("worldplan/Maze-v0", image_size=64, layout="tworoom", door_y=None)
        out = [e.reset(seed=9)[0]["pixels"]]
        e.action_space.seed(1)
        out += [e.step(e.action_space.sample())[0]["pixels"] for _ in range(100)]
        return out

    for a, b in zip(frames(), frames(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_umaze_orientation_goal_cell_bottom_left() -> None:
    env = make("umaze")
    env.reset(seed=0, options={"state": [1.0, 1.0]})
    img = env.render().astype(int)
    green = (img[..., 1] > img[..., 0] + 40) & (img[..., 1] > img[..., 2] + 40)
    rows, cols = np.nonzero(green)
    assert rows.mean() > 40
    assert cols.mean() < 24
    assert umaze_path((1, 1), (3, 1)) == [(1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (3, 2), (3, 1)]


def test_reset_options_are_validated() -> None:
    env = make("tworoom", wall_x=32.0, door_y=32.0)
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"goal": [1.0, 2.0]})
    with pytest.raises(ValueError, match="inside a wall"):
        env.reset(options={"state": [32.0, 10.0]})
    with pytest.raises(ValueError, match="layout"):
        env.reset(options={"goal_state": [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]})
    with pytest.raises(ValueError, match="numeric"):
        env.reset(options={"state": ["a", "b"]})
    with pytest.raises(ValueError, match="door_y"):
        env.reset(options={"door_y": 70})
    _, info = env.reset(seed=0, options={"goal_state": [50.0, 50.0]})
    np.testing.assert_array_equal(env.goal_state[:2], [50.0, 50.0])
    assert info["distance"] == pytest.approx(np.linalg.norm(info["state"][:2] - [50.0, 50.0]))


# ----------------------------------------------------------------------------- actions


@pytest.mark.parametrize("layout", LAYOUTS)
def test_bad_actions_raise_and_out_of_box_is_clipped(layout: str) -> None:
    env, twin = make(layout), make(layout)
    env.reset(seed=6)
    twin.reset(seed=6)
    before = env.get_state()
    for bad in (
        np.zeros(3),
        np.array([np.nan, 0.0]),
        np.array([np.inf, 0.0]),
        "up",
        np.zeros((1, 2)),
    ):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)  # type: ignore[arg-type]
        np.testing.assert_array_equal(env.get_state(), before)
    _, _, _, _, info = env.step(np.array([5.0, -3.0], dtype=np.float32))
    _, _, _, _, ref = twin.step(np.array([1.0, -1.0], dtype=np.float32))
    assert info["action_clipped"]
    assert not ref["action_clipped"]
    np.testing.assert_array_equal(info["state"], ref["state"])


# ----------------------------------------------------------------------------- policies


def run_policy(env: gym.Env, policy: object, seed: int, steps: int = 300) -> bool:
    obs, info = env.reset(seed=seed)
    policy.reset(seed)  # type: ignore[attr-defined]
    for _ in range(steps):
        action = policy(obs, info)  # type: ignore[operator]
        assert action.dtype == np.float32
        assert env.action_space.contains(action)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return bool(info["is_success"])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_scripted_policy_reaches_the_goal(layout: str) -> None:
    env = gym.make("worldplan/Maze-v0", image_size=64, layout=layout, door_y=None)
    to_goal = ScriptedPolicy(env, goal_prob=1.0)
    wandering = make_policy(env, "scripted")
    assert isinstance(wandering, ScriptedPolicy)
    reached = sum(run_policy(env, to_goal, seed) for seed in range(8))
    assert reached >= 7
    # With random waypoints first (the default), most episodes still end at the goal.
    reached = sum(run_policy(env, wandering, seed) for seed in range(8))
    assert reached >= 5


@pytest.mark.parametrize("layout", LAYOUTS)
def test_random_policy_rarely_ends_at_the_goal(layout: str) -> None:
    env = gym.make("worldplan/Maze-v0", image_size=64, layout=layout, door_y=None)
    policy = RandomPolicy(env)
    reached = sum(run_policy(env, policy, seed, steps=200) for seed in range(16))
    assert reached <= 3


def test_random_policy_is_correlated_and_seeded() -> None:
    env = make("umaze")
    obs, info = env.reset(seed=0)
    policy = RandomPolicy(env)
    policy.reset(3)
    first = np.stack([policy(obs, info) for _ in range(400)])
    policy.reset(3)
    np.testing.assert_array_equal(first, np.stack([policy(obs, info) for _ in range(400)]))
    lag1 = np.corrcoef(first[:-1, 0], first[1:, 0])[0, 1]
    assert lag1 > 0.7
    assert first.std(axis=0).min() > 0.3


@pytest.mark.parametrize("layout", LAYOUTS)
def test_state_only_pixels_and_terminate_on_success(layout: str) -> None:
    fast, full = make(layout, render_pixels=False), make(layout)
    obs_fast, _ = fast.reset(seed=8)
    obs_full, _ = full.reset(seed=8)
    assert not obs_fast["pixels"].any()
    assert obs_full["pixels"].any()
    np.testing.assert_array_equal(obs_fast["proprio"], obs_full["proprio"])
    np.testing.assert_array_equal(fast.render(), obs_full["pixels"])
    ending = make(layout, terminate_on_success=True)
    _, info = ending.reset(seed=8)
    _, _, terminated, _, _ = ending.step(np.zeros(2, dtype=np.float32))
    assert not terminated
    ending.reset(seed=8, options={"goal_state": info["state"][:2]})
    _, reward, terminated, _, info = ending.step(np.zeros(2, dtype=np.float32))
    assert terminated
    assert reward == 1.0
    assert info["is_success"]


@pytest.mark.parametrize("kwargs", [{"layout": "tworoom"}, {"layout": "tworoom", "wall_x": None}])
def test_gymnasium_checker_passes_for_the_tworoom_layout(kwargs: dict[str, Any]) -> None:
    env = gym.make("worldplan/Maze-v0", image_size=64, **kwargs)
    check_env(env.unwrapped, skip_render_check=False)
    walls = {env.reset(seed=s)[1]["state"][5] for s in range(10)}
    if "wall_x" in kwargs:  # drawn from the seed
        assert len(walls) >= 4
        assert all(20 <= w <= 44 for w in walls)
    else:
        assert walls == {32.0}
