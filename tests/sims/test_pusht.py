"""push-T: physics, scoring, state round trips, bad input, policies and the demo GIF."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import sims  # noqa: F401
from sims.demo import record_episode
from sims.policies import make_policy
from sims.pusht import (
    T_OUTLINE,
    PushTEnv,
    _possible_contacts,
    agent_block_distance,
    block_polygons,
    coverage,
    local_to_world,
)

GOAL_POSE = (256.0, 256.0, math.pi / 4)


def make_env(**kwargs: object) -> PushTEnv:
    env = PushTEnv(image_size=64, terminate_on_success=False, **kwargs)  # type: ignore[arg-type]
    env.reset(seed=0)
    return env


def state(agent: tuple[float, float], block: tuple[float, float, float]) -> np.ndarray:
    return np.array([*agent, *block, 0.0, 0.0], dtype=np.float64)


# ------------------------------------------------------------------ physics


def test_pusher_moves_the_t_straight_when_pushed_through_its_centre() -> None:
    env = make_env()
    env.set_state(state((256.0, 180.0), (256.0, 256.0, 0.0)))
    for _ in range(7):  # stops before the stem reaches the bottom wall
        env.step(np.array([0.0, 0.5], dtype=np.float32))
    x, y, angle = env.get_state()[2:5]
    assert y > 256.0 + 40.0  # pushed down by the pusher
    assert x == pytest.approx(256.0, abs=1e-6)  # pushed through the centroid: no sideways drift
    assert min(angle, 2 * math.pi - angle) < 1e-6  # ... and no turn


def test_pushing_the_end_of_the_bar_turns_the_t() -> None:
    env = make_env()
    env.set_state(state((306.0, 180.0), (256.0, 256.0, 0.0)))  # above the right end of the bar
    for _ in range(8):
        env.step(np.array([0.0, 0.5], dtype=np.float32))
    angle = env.get_state()[4]
    # y points down: pushing the right end down turns the T clockwise on screen, angle up.
    assert 0.1 < angle < math.pi


def test_t_does_not_move_when_not_touched() -> None:
    env = make_env()
    start = state((80.0, 80.0), (380.0, 380.0, 1.0))
    env.set_state(start)
    rng = np.random.default_rng(0)
    for _ in range(50):
        agent = env.get_state()[:2]
        # wander, but steer back into the top-left corner region
        action = rng.uniform(-0.3, 0.3, size=2) + (np.array([80.0, 80.0]) - agent) / 200.0
        env.step(np.clip(action, -1, 1).astype(np.float32))
    end = env.get_state()
    assert np.linalg.norm(end[:2] - start[:2]) > 1.0  # the pusher did move
    np.testing.assert_array_equal(end[2:5], start[2:5])


def test_t_jammed_against_a_wall_stays_inside() -> None:
    env = make_env()
    # bar's outer face 54 px from the right wall, the pusher driving into the stem's end
    env.set_state(state((300.0, 256.0), (450.0, 256.0, math.pi / 2)))
    deepest = 0.0
    for _ in range(40):
        env.step(np.array([1.0, 0.0], dtype=np.float32))
        s = env.get_state()
        corners = local_to_world(T_OUTLINE, (s[2], s[3], s[4]))
        deepest = max(deepest, corners[:, 0].max() - 504.0)
    assert s[0] > 500.0  # the pusher did drive into the wall region
    assert deepest < 30.0  # squeezed, not pushed through
    assert corners[:, 0].max() < 504.0 + 1.0  # and back inside once it slipped aside


def test_pusher_pd_control_reaches_a_held_target() -> None:
    env = make_env()
    env.set_state(state((100.0, 100.0), (380.0, 380.0, 0.0)))
    target = np.array([160.0, 130.0])
    for _ in range(25):
        agent = env.get_state()[:2]
        env.step(((target - agent) / 100.0).astype(np.float32))  # relative action: target fixed
    s = env.get_state()
    assert np.linalg.norm(s[:2] - target) < 1.0
    assert np.hypot(s[5], s[6]) < 5.0


# ------------------------------------------------------------------ scoring


def test_goal_state_is_success_with_full_coverage() -> None:
    env = make_env()
    env.set_state(env.goal_state)
    scores = env.evaluate_state(env.get_state(), env.goal_state)
    assert scores["is_success"] is True
    assert scores["coverage"] == pytest.approx(1.0, abs=1e-12)
    fresh = PushTEnv(image_size=32)  # terminates on success by default
    fresh.reset(seed=0, options={"state": env.goal_state})
    _, reward, terminated, _, info = fresh.step(np.zeros(2, dtype=np.float32))
    assert terminated
    assert info["is_success"]
    assert reward == pytest.approx(1.0, abs=1e-9)


def test_success_needs_agent_block_and_angle() -> None:
    env = make_env()
    goal = env.goal_state
    near = goal.copy()
    near[[0, 2]] += 9.0  # 4-D position error 12.7 px
    near[4] += 0.3  # < pi/9
    assert env.evaluate_state(near, goal)["is_success"] is True
    for index, delta in ((0, 25.0), (3, 25.0), (4, 0.4)):
        off = goal.copy()
        off[index] += delta
        assert env.evaluate_state(off, goal)["is_success"] is False, index
    wrapped = goal.copy()
    wrapped[4] += 2 * math.pi
    assert env.evaluate_state(wrapped, goal)["is_success"] is True


def test_coverage_exact_for_a_known_overlap_and_zero_far_away() -> None:
    goal = (256.0, 256.0, 0.0)
    # shifted 10 px sideways: bar overlap 110 x 30, stem overlap 20 x 90
    assert coverage((266.0, 256.0, 0.0), goal) == pytest.approx((3300 + 1800) / 6300, abs=1e-12)
    assert coverage(goal, goal) == pytest.approx(1.0, abs=1e-12)
    assert coverage((100.0, 420.0, 2.0), GOAL_POSE) == 0.0
    assert coverage((256.0, 256.0, math.pi / 4 + math.pi), GOAL_POSE) < 0.3  # upside down
    partial = coverage((256.0, 266.0, math.pi / 4 + 0.2), GOAL_POSE)
    assert 0.3 < partial < 0.95


def test_coverage_matches_a_pixel_count() -> None:
    rng = np.random.default_rng(1)
    grid = np.stack(np.meshgrid(np.arange(150, 362) + 0.5, np.arange(150, 362) + 0.5), -1)
    points = grid.reshape(-1, 2)

    def inside(pose: tuple[float, float, float]) -> np.ndarray:
        mask = np.zeros(len(points), dtype=bool)
        for poly in block_polygons(pose):
            edges = np.roll(poly, -1, axis=0) - poly
            rel = points[:, None, :] - poly[None]
            cross = edges[None, :, 0] * rel[..., 1] - edges[None, :, 1] * rel[..., 0]
            mask |= np.all(cross >= 0, axis=1)
        return mask

    goal_mask = inside(GOAL_POSE)
    for _ in range(5):
        pose = (256.0 + rng.uniform(-30, 30), 256.0 + rng.uniform(-30, 30), rng.uniform(0, 1.5))
        estimate = (inside(pose) & goal_mask).sum() / goal_mask.sum()
        assert coverage(pose, GOAL_POSE) == pytest.approx(estimate, abs=0.01)


def test_random_policy_rarely_succeeds() -> None:
    env = gym.make("worldplan/PushT-v0", image_size=16)
    successes, coverages = 0, []
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        policy = make_policy(env, "random", seed=seed)
        for _ in range(300):
            obs, _, terminated, truncated, info = env.step(policy(obs, info))
            if terminated or truncated:
                break
        successes += bool(info["is_success"])
        coverages.append(info["coverage"])
    assert successes <= 1
    assert float(np.mean(coverages)) < 0.5


# ---------------------------------------------------------------- bad input


def test_out_of_box_action_is_clipped_and_reported() -> None:
    a, b = make_env(), make_env()
    start = state((200.0, 200.0), (400.0, 400.0, 0.0))
    a.set_state(start)
    b.set_state(start)
    *_, info_a = a.step(np.array([5.0, -0.5], dtype=np.float32))
    *_, info_b = b.step(np.array([1.0, -0.5], dtype=np.float32))
    assert info_a["action_clipped"] is True
    assert info_b["action_clipped"] is False
    np.testing.assert_array_equal(a.get_state(), b.get_state())


@pytest.mark.parametrize(
    "bad",
    [np.array([np.nan, 0.0]), np.array([0.0, np.inf]), np.zeros(3), np.zeros((1, 2)), "up"],
)
def test_bad_action_raises_and_leaves_state_untouched(bad: object) -> None:
    env = make_env()
    env.step(np.array([0.3, 0.2], dtype=np.float32))
    before = env.get_state()
    pixels = env.render()
    with pytest.raises(ValueError, match="action"):
        env.step(bad)  # type: ignore[arg-type]
    np.testing.assert_array_equal(env.get_state(), before)
    np.testing.assert_array_equal(env.render(), pixels)
    env.step(np.zeros(2, dtype=np.float32))  # still usable


def test_bad_state_and_options_are_rejected() -> None:
    env = make_env()
    with pytest.raises(ValueError, match="shape"):
        env.set_state(np.zeros(5))
    with pytest.raises(ValueError, match="finite"):
        env.set_state(np.full(7, np.nan))
    far = state((900.0, 100.0), (256.0, 256.0, 0.0))
    with pytest.raises(ValueError, match="agent position"):
        env.set_state(far)
    assert env.evaluate_state(far, env.goal_state)["is_success"] is False  # scoring still works
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"start": np.zeros(7)})
    with pytest.raises(ValueError, match="image_size"):
        PushTEnv(image_size=3)


# ------------------------------------------------------------ state & pose


@pytest.mark.parametrize("angle", [-3.0, -1.2, 0.0, 0.4, math.pi / 2, 2.5, 3.1, 5.9])
def test_pose_round_trip_keeps_the_origin(angle: float) -> None:
    env = make_env()
    s = state((60.0, 450.0), (250.0, 240.0, angle))
    env.set_state(s)
    np.testing.assert_array_equal(env.get_state(), s)
    # A step without contact: the T must stay exactly where it was put (the pose
    # pitfall would rotate it about its centre of gravity and move the origin).
    env.step(np.array([0.1, 0.0], dtype=np.float32))
    after = env.get_state()
    np.testing.assert_allclose(after[2:4], s[2:4], atol=1e-9)
    assert after[4] == pytest.approx(angle % (2 * math.pi), abs=1e-12)
    # The drawn T is where the pose says: the stem's far end is drawn, the point
    # as far beyond the bar's outer edge is background.
    img = PushTEnv(image_size=256).render_state(s)
    for local, drawn in (((0.0, 110.0), True), ((0.0, -60.0), False)):
        x, y = local_to_world(np.array([local]), (s[2], s[3], s[4]))[0] / 2.0
        assert (img[int(y), int(x)] != 255).any() == drawn, (local, angle)


def test_reset_is_seeded_and_takes_state_and_goal() -> None:
    a, b = PushTEnv(image_size=32), PushTEnv(image_size=32)
    obs_a, _ = a.reset(seed=7)
    obs_b, _ = b.reset(seed=7)
    np.testing.assert_array_equal(obs_a["pixels"], obs_b["pixels"])
    np.testing.assert_array_equal(a.get_state(), b.get_state())
    b.reset(seed=8)
    assert not np.array_equal(a.get_state(), b.get_state())
    start = state((100.0, 100.0), (300.0, 200.0, 1.0))
    goal = state((50.0, 50.0), (200.0, 300.0, 2.0))
    obs, info = a.reset(seed=1, options={"state": start, "goal_state": goal})
    np.testing.assert_array_equal(a.get_state(), start)
    np.testing.assert_array_equal(a.goal_state, goal)
    np.testing.assert_array_equal(info["state"], start)
    np.testing.assert_allclose(obs["proprio"], [100.0, 100.0, 0.0, 0.0])
    assert obs["proprio"].dtype == np.float32


def test_reset_samples_the_reference_ranges_without_overlap() -> None:
    env = PushTEnv(image_size=16)
    states = np.array([env.reset(seed=i)[1]["state"] for i in range(200)])
    assert states[:, :2].min() >= 50
    assert states[:, :2].max() <= 450
    assert states[:, 2:4].min() >= 100
    assert states[:, 2:4].max() <= 400
    assert states[:, 4].min() >= 0.0  # drawn in [-pi, pi), stored in [0, 2 pi) like step's
    assert states[:, 4].max() < 2 * math.pi
    assert states[:, 4].min() < 0.5
    assert states[:, 4].max() > 2 * math.pi - 0.5
    np.testing.assert_array_equal(states[:, 5:], 0.0)
    for s in states:  # no start inside a wall or with the pusher inside the T
        corners = local_to_world(T_OUTLINE, (s[2], s[3], s[4]))
        assert corners.min() > 7.0
        assert corners.max() < 504.0
        assert agent_block_distance(s[:2], (s[2], s[3], s[4])) > 15.0


@pytest.mark.parametrize("kind", ["scripted", "random"])
def test_contact_prediction_never_misses_a_contact(kind: str) -> None:
    # The space is rebuilt (and the walls added) only before steps that may have
    # contacts; a step predicted contact-free must leave the T alone and clear.
    env = gym.make("worldplan/PushT-v0", image_size=16, terminate_on_success=False)
    inner = env.unwrapped
    assert isinstance(inner, PushTEnv)
    skipped = 0
    for seed in range(2):
        obs, info = env.reset(seed=seed)
        policy = make_policy(env, kind, seed=seed)  # type: ignore[arg-type]
        for _ in range(150):
            action = policy(obs, info)
            before = inner.get_state()
            target = np.clip(before[:2] + 100.0 * action, 0.0, 512.0)
            pushed, walls = _possible_contacts(before, target)
            obs, _, _, _, info = env.step(action)
            after = info["state"]
            pose = (after[2], after[3], after[4])
            if not walls:
                corners = local_to_world(T_OUTLINE, pose)
                assert corners.min() > 7.0
                assert corners.max() < 504.0
            if not (pushed or walls):
                skipped += 1
                np.testing.assert_array_equal(after[2:5], before[2:5])
                assert agent_block_distance(after[:2], pose) > 15.0
    assert skipped > 20


def test_pickle_in_contact_gives_an_identical_future() -> None:
    env = gym.make("worldplan/PushT-v0", image_size=32)
    obs, info = env.reset(seed=4)
    policy = make_policy(env, "scripted", seed=4)
    clone = None
    clone_actions: list[np.ndarray] = []
    contact_steps = 0
    for t in range(120):
        action = policy(obs, info)
        if t == 40:
            clone = pickle.loads(pickle.dumps(env))
        before = env.unwrapped.get_state()  # type: ignore[attr-defined]
        obs, _, terminated, truncated, info = env.step(action)
        contact_steps += t >= 40 and not np.array_equal(before[2:5], info["state"][2:5])
        if t >= 40:
            clone_actions.append(action)
        assert not terminated
        assert not truncated
    assert clone is not None
    assert contact_steps > 10  # the comparison covers pushes, not just free motion
    for action in clone_actions:
        clone_obs, *_ = clone.step(action)
    np.testing.assert_array_equal(clone.unwrapped.get_state(), env.unwrapped.get_state())  # type: ignore[attr-defined]
    np.testing.assert_array_equal(clone_obs["pixels"], obs["pixels"])


def test_draw_goal_shows_the_goal_t() -> None:
    plain, with_goal = make_env(), make_env(draw_goal=True)
    s = state((60.0, 450.0), (420.0, 420.0, 0.0))
    gx, gy = np.array(GOAL_POSE[:2]) / 512 * 64
    assert (plain.render_state(s)[int(gy), int(gx)] == 255).all()
    assert (with_goal.render_state(s)[int(gy), int(gx)] != 255).any()


# ----------------------------------------------------------------- policies


@pytest.mark.parametrize("kind", ["scripted", "random"])
def test_policies_are_seeded_and_valid(kind: str) -> None:
    def run(seed: int) -> np.ndarray:
        env = gym.make("worldplan/PushT-v0", image_size=16)
        obs, info = env.reset(seed=2)
        policy = make_policy(env, kind, seed=seed)  # type: ignore[arg-type]
        actions = []
        for _ in range(40):
            action = policy(obs, info)
            assert action.dtype == np.float32
            assert env.action_space.contains(action)
            actions.append(action)
            obs, *_, info = env.step(action)
        return np.array(actions)

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


def test_scripted_policy_makes_contact_rich_varied_data() -> None:
    env = gym.make("worldplan/PushT-v0", image_size=16)
    moving, steps, deltas = 0, 0, []
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        policy = make_policy(env, "scripted", seed=seed)
        for _ in range(100):
            before = info["state"]
            obs, _, terminated, truncated, info = env.step(policy(obs, info))
            delta = info["state"][2:5] - before[2:5]
            delta[2] = math.remainder(delta[2], 2 * math.pi)
            if np.abs(delta).max() > 1e-6:
                moving += 1
                deltas.append(delta)
            steps += 1
            if terminated or truncated:
                break
    assert moving / steps > 0.2  # pushes, not just wandering
    d = np.array(deltas)
    # the T is pushed both ways along x and y and turned both ways
    for column in range(3):
        assert (d[:, column] > 0.5 * (column < 2) + 0.01 * (column == 2)).any()
        assert (d[:, column] < -(0.5 * (column < 2) + 0.01 * (column == 2))).any()


def test_random_policy_actions_are_correlated() -> None:
    env = gym.make("worldplan/PushT-v0", image_size=16)
    obs, info = env.reset(seed=0)
    policy = make_policy(env, "random", seed=0)
    actions = []
    for _ in range(200):
        action = policy(obs, info)
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            obs, info = env.reset(seed=1)
    a = np.array(actions)
    lag1 = np.corrcoef(a[:-1, 0], a[1:, 0])[0, 1]
    assert lag1 > 0.5
    assert a.std() > 0.15


# --------------------------------------------------------------------- demo


def test_record_episode_writes_a_gif(tmp_path: Path) -> None:
    path = record_episode("worldplan/PushT-v0", tmp_path / "out", seed=0, steps=6)
    assert path.parent == tmp_path / "out"
    assert path.suffix == ".gif"
    with Image.open(path) as gif:
        assert gif.n_frames == 7
        assert gif.size == (224, 224)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    named = record_episode("worldplan/PushT-v0", tmp_path / "a.gif", 1, 2, "random")
    assert named == tmp_path / "a.gif"
    assert named.exists()
    with pytest.raises(ValueError, match="steps"):
        record_episode("worldplan/PushT-v0", tmp_path, seed=0, steps=0)
    with pytest.raises(ValueError, match="policy"):
        record_episode("worldplan/PushT-v0", tmp_path, seed=0, steps=1, policy="greedy")


def test_state_only_mode_gives_the_same_physics_and_black_frames() -> None:
    drawn = gym.make("worldplan/PushT-v0", image_size=64)
    blind = gym.make("worldplan/PushT-v0", image_size=64, render_pixels=False)
    drawn.reset(seed=4)
    obs, _ = blind.reset(seed=4)
    assert not obs["pixels"].any()
    policy = make_policy(drawn, "scripted", seed=4)
    obs_d, info = drawn.reset(seed=4)
    for _ in range(30):
        action = policy(obs_d, info)
        obs_d, *_, info = drawn.step(action)
        obs_b, *_ = blind.step(action)
        assert obs_d["pixels"].any()
        assert not obs_b["pixels"].any()
        np.testing.assert_array_equal(obs_d["proprio"], obs_b["proprio"])
    np.testing.assert_array_equal(drawn.unwrapped.get_state(), blind.unwrapped.get_state())


def test_scripted_pace_sets_the_action_size_and_a_range_draws_it_per_episode() -> None:
    env = gym.make("worldplan/PushT-v0", image_size=32, render_pixels=False)

    def largest_action(policy: object, seed: int) -> float:
        obs, info = env.reset(seed=seed)
        norms = []
        for _ in range(40):
            a = policy(obs, info)  # type: ignore[operator]
            norms.append(float(np.linalg.norm(a)))
            obs, _, _, _, info = env.step(a)
        return max(norms)

    slow = make_policy(env, "scripted", seed=0, speed=0.3, noise=0.0)
    assert largest_action(slow, 0) <= 0.3 + 1e-6
    fast = make_policy(env, "scripted", seed=0, speed=1.0, noise=0.0)
    assert largest_action(fast, 0) > 0.9
    paces = []
    for seed in range(20):
        ranged = make_policy(env, "scripted", seed=seed, speed=(0.3, 1.0))
        paces.append(ranged.speed)  # type: ignore[attr-defined]
    assert min(paces) >= 0.3
    assert max(paces) <= 1.0
    assert np.std(paces) > 0.1  # drawn per episode, not fixed
    for bad in (0.0, 1.5, (0.8, 0.3), (0.1, 0.2, 0.3)):
        with pytest.raises(ValueError, match="speed"):
            make_policy(env, "scripted", seed=0, speed=bad)
