"""Physics, metric, goal, rendering and policy tests of ``worldplan/Granular-v0``."""

from __future__ import annotations

import math
import pickle

import gymnasium as gym
import numpy as np
import pytest
from scipy.spatial import cKDTree

import sims  # noqa: F401  (registers the envs)
from sims import granular
from sims.granular import GranularEnv, chamfer_distance
from sims.policies import make_policy
from sims.policies.granular import RandomPolicy


def make(n: int = 100, seed: int = 0, **kwargs: object) -> GranularEnv:
    env = GranularEnv(n_particles=n, **kwargs)  # type: ignore[arg-type]
    env.reset(seed=seed)
    return env


def stroke(env: GranularEnv, start: np.ndarray, end: np.ndarray) -> dict[str, object]:
    _, _, _, _, info = env.step(GranularEnv.stroke_to_action(start, end))
    return info


# --------------------------------------------------------------------------- physics


def test_stroke_through_pile_moves_discs() -> None:
    env = make(seed=1)
    before = env.particles(env.get_state())
    cx, cy, _ = GranularEnv.summary(env.get_state())
    stroke(env, np.array([-2.5, cy]), np.array([cx + 0.5, cy]))
    after = env.particles(env.get_state())
    moved = np.linalg.norm(after - before, axis=1) > 0.05
    assert moved.sum() >= 10
    assert GranularEnv.summary(env.get_state())[0] > cx + 0.1  # pushed toward +x


def test_stroke_far_away_moves_nothing() -> None:
    env = make(seed=2)
    before = env.get_state()
    stroke(env, np.array([-2.5, -2.5]), np.array([2.5, -2.5]))
    np.testing.assert_array_equal(env.particles(env.get_state()), env.particles(before))
    np.testing.assert_allclose(env.get_state()[-3:-1], [2.5, -2.5], atol=1e-6)


class CrossingWatch:
    """Watches every substep of a stroke for a disc crossing the board's centre line.

    Board frame: ``along`` the stroke and ``across`` it. A disc that changes the side of
    the board it is on while within the board's straight part (not around its rounded
    ends) went through the board. Discs lying under the board where it was lowered are
    ignored: the solver pushes them out to either side.
    """

    def __init__(self, particles: np.ndarray, start: np.ndarray, end: np.ndarray, r: float):
        self.u = (end - start) / np.linalg.norm(end - start)
        self.lat = np.array([-self.u[1], self.u[0]])
        self.half = granular.BOARD_LENGTH / 2
        self.r = r
        along, across = self.frame(particles, start)
        gap = np.hypot(along, across - np.clip(across, -self.half, self.half))
        self.watched = gap >= granular.BOARD_RADIUS + r
        self.side = np.sign(along)
        self.inside = np.abs(across) < self.half - r
        self.crossed: set[int] = set()
        self.deepest = 0.0  # largest overlap of a watched disc with the board / (r + h)

    def frame(self, p: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (p - centre) @ self.u, (p - centre) @ self.lat

    def __call__(self, board: np.ndarray, particles: np.ndarray) -> None:
        along, across = self.frame(particles, board)
        inside = np.abs(across) < self.half - self.r
        side = np.sign(along)
        flipped = (side != self.side) & (inside | self.inside) & self.watched
        self.crossed.update(np.flatnonzero(flipped).tolist())
        self.side, self.inside = side, inside
        gap = np.hypot(along, across - np.clip(across, -self.half, self.half))
        reach = granular.BOARD_RADIUS + self.r
        self.deepest = max(self.deepest, float(((reach - gap) / reach)[self.watched].max()))


def watched_stroke(env: GranularEnv, start: np.ndarray, end: np.ndarray) -> CrossingWatch:
    """Run a stroke through ``push_stroke`` with a watch, then put the result in ``env``."""
    action = GranularEnv.stroke_to_action(start, end)
    start, end = GranularEnv.action_to_stroke(action)  # as the env will see it
    before = env.particles(env.get_state())
    watch = CrossingWatch(before, start, end, env.radius)
    after, lifted = granular.push_stroke(before, start, end, env.radius, on_substep=watch)
    env.step(action)
    np.testing.assert_array_equal(env.particles(env.get_state()), after)  # same physics
    np.testing.assert_array_equal(env.get_state()[-3:-1], lifted)
    return watch


@pytest.mark.parametrize("n", [100, 300])
def test_discs_never_pass_through_the_board(n: int) -> None:
    env = make(n=n, seed=3)
    rng = np.random.default_rng(0)
    reach = granular.REACH
    hits = 0
    for k in range(8):  # into the pile from all sides
        angle = 2 * math.pi * k / 8 + rng.uniform(-0.2, 0.2)
        u = np.array([math.cos(angle), math.sin(angle)])
        centre = np.array(GranularEnv.summary(env.get_state())[:2])
        start = np.clip(centre - 2.2 * u, -reach, reach)
        end = np.clip(centre + rng.uniform(0.0, 1.0) * u, -reach, reach)
        watch = watched_stroke(env, start, end)
        assert not watch.crossed, f"discs {sorted(watch.crossed)} crossed the board"
        assert watch.deepest < 0.6
        hits += int(watch.deepest > 0)
    for a, b in (((-reach, 0.0), (reach, 0.0)), ((reach, 0.3), (-reach, 0.3))):
        watch = watched_stroke(env, np.array(a), np.array(b))  # into the rim
        assert not watch.crossed
        assert watch.deepest < 0.6
    assert hits >= 6  # the strokes did meet discs


def test_the_watch_catches_a_board_too_fast_to_hold_discs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(granular, "STROKE_STEP", 0.6)  # > disc radius + board half-thickness
    env = make(n=300, seed=3)
    centre = np.array(GranularEnv.summary(env.get_state())[:2])
    watch = watched_stroke(env, centre - np.array([2.2, 0.0]), centre + np.array([1.0, 0.0]))
    assert watch.crossed


@pytest.mark.parametrize("n", [100, 300])
def test_random_strokes_never_cross_the_board(n: int) -> None:
    env = make(n=n, seed=4)
    policy = RandomPolicy(env)
    policy.reset(seed=1)
    for _ in range(10):
        start, end = GranularEnv.action_to_stroke(policy({}, {}))
        watch = watched_stroke(env, start, end)
        assert not watch.crossed, f"discs {sorted(watch.crossed)} crossed the board"


def test_discs_stay_on_the_table_under_rim_squeeze() -> None:
    env = make(n=300, seed=4)
    sweeps = [(-1, 0, 1, 0), (1, 0, -1, 0), (-1, -1, 1, 1), (0, 1, 0, -1), (1, 0.9, -1, 0.9)]
    for a in sweeps * 2:
        env.step(np.array(a, dtype=np.float32))
        p = env.particles(env.get_state())
        assert np.abs(p).max() < granular.TABLE_HALF - 0.5 * env.radius


@pytest.mark.parametrize("n", [100, 300])
def test_board_stalls_at_the_rim_instead_of_crushing(n: int) -> None:
    env = make(n=n, seed=5)
    for y in (0.0, 0.1, -0.1):  # the whole pile against the right rim, three times
        env.step(np.array([-1, y, 1, y], dtype=np.float32))
        assert env.get_state()[-3] < granular.REACH - 0.01  # stopped short of the commanded end
        p = env.particles(env.get_state())
        gaps, _ = cKDTree(p).query(p, 2)
        assert (2 * env.radius - gaps[:, 1]).max() < 0.25 * env.radius  # no crushed discs
        assert p[:, 0].max() < granular.TABLE_HALF - 0.5 * env.radius


def test_step_is_a_pure_function_of_state_and_action() -> None:
    a, b = make(seed=6), make(seed=99)
    b.set_state(a.get_state())
    action = np.array([-0.9, 0.1, 0.4, -0.1], dtype=np.float32)
    obs_a, *_ = a.step(action)
    obs_b, *_ = b.step(action)
    np.testing.assert_array_equal(a.get_state(), b.get_state())
    np.testing.assert_array_equal(obs_a["pixels"], obs_b["pixels"])


def test_reused_discs_give_bit_identical_strokes() -> None:
    env = make(n=100, seed=15)
    pool = granular.DiscPool(100, env.radius)
    p = env.particles(env.get_state())
    squeezed = p * 0.7  # overlapping discs: the solver leaves bias velocities on them
    granular.push_stroke(
        squeezed, np.array([-2.0, 0.0]), np.array([0.0, 0.0]), env.radius, pool=pool
    )
    for start, end in (((-2.5, 0.1), (0.4, 0.0)), ((0.3, 2.5), (0.0, -0.5))):
        s, e = np.array(start), np.array(end)
        reused = granular.push_stroke(p, s, e, env.radius, pool=pool)
        fresh = granular.push_stroke(p, s, e, env.radius)
        np.testing.assert_array_equal(reused[0], fresh[0])
        np.testing.assert_array_equal(reused[1], fresh[1])
        p = fresh[0]


# --------------------------------------------------------------------------- metric


def test_chamfer_of_a_set_with_itself_is_zero_and_symmetric() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 2)), rng.normal(size=(70, 2))
    assert chamfer_distance(a, a) == 0.0
    assert chamfer_distance(a, b) == pytest.approx(chamfer_distance(b, a))
    assert chamfer_distance(a, b) > 0


def test_chamfer_known_value() -> None:
    a = np.array([[0.0, 0.0], [1.0, 0.0]])
    b = np.array([[0.0, 1.0]])
    # a -> b: (1 + sqrt 2) / 2; b -> a: 1
    assert chamfer_distance(a, b) == pytest.approx((1 + math.sqrt(2)) / 2 + 1)


def test_chamfer_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="point sets"):
        chamfer_distance(np.zeros((3, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="point sets"):
        chamfer_distance(np.zeros((0, 2)), np.zeros((3, 2)))


def test_goal_state_succeeds_and_start_does_not() -> None:
    for seed in range(5):
        env = make(seed=seed)
        start = env.evaluate_state(env.get_state(), env.goal_state)
        assert start["is_success"] is False
        env.set_state(env.goal_state)
        scores = env.evaluate_state(env.get_state(), env.goal_state)
        assert scores["is_success"] is True
        assert scores["chamfer"] == 0.0


def test_default_goal_follows_the_gathering_rule() -> None:
    for seed in range(10):
        env = make(seed=seed)
        sx, sy, s_spread = GranularEnv.summary(env.get_state())
        gx, gy, g_spread = GranularEnv.summary(env.goal_state)
        assert 0.6 - 1e-9 <= g_spread / s_spread <= 0.9 + 1e-9
        assert abs(gx - sx) <= granular.GOAL_SHIFT
        assert abs(abs(gx - sx) - abs(gy - sy)) < 1e-9
        goal = env.particles(env.goal_state)
        assert np.abs(goal).max() <= granular.TABLE_HALF - env.radius


def test_reset_options_give_start_and_goal() -> None:
    env = make(seed=0)
    other = make(seed=1)
    env.reset(seed=2, options={"state": other.get_state(), "goal_state": other.goal_state})
    np.testing.assert_array_equal(env.get_state(), other.get_state())
    np.testing.assert_array_equal(env.goal_state, other.goal_state)
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"goal": other.goal_state})
    with pytest.raises(ValueError, match="goal_state must be"):
        env.reset(options={"goal_state": np.zeros(5)})


def test_summary_known_values() -> None:
    state = np.array([1.0, 0.0, -1.0, 0.0, 0.0, 2.0, 0.0, -2.0, 9.0, 9.0, 0.5])
    cx, cy, spread = GranularEnv.summary(state)
    assert (cx, cy) == (0.0, 0.0)
    assert spread == pytest.approx(math.sqrt((1 + 1 + 4 + 4) / 4))


# --------------------------------------------------------------------------- state


def test_state_round_trip_and_labels() -> None:
    env = make(n=120, seed=7)
    state = env.get_state()
    assert state.shape == (2 * 120 + 3,) == (len(env.state_labels),)
    assert env.state_labels[:2] == ("p000_x", "p000_y")
    assert env.state_labels[-3:] == ("pusher_x", "pusher_y", "pusher_angle")
    env.set_state(state)
    np.testing.assert_array_equal(env.get_state(), state)


def test_set_state_rejects_bad_states() -> None:
    env = make(seed=0)
    before = env.get_state()
    with pytest.raises(ValueError, match="shape"):
        env.set_state(np.zeros(4))
    bad = before.copy()
    bad[0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        env.set_state(bad)
    bad = before.copy()
    bad[1] = 3.5
    with pytest.raises(ValueError, match="on the table"):
        env.set_state(bad)
    np.testing.assert_array_equal(env.get_state(), before)


def test_constructor_validates_arguments() -> None:
    with pytest.raises(ValueError, match="n_particles"):
        GranularEnv(n_particles=3)
    with pytest.raises(ValueError, match="image_size"):
        GranularEnv(image_size=4)
    with pytest.raises(ValueError, match="render_mode"):
        GranularEnv(render_mode="human")


# --------------------------------------------------------------------------- actions


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((2, 2)), np.full(4, np.nan), "left"])
def test_bad_actions_raise_and_leave_state(bad: object) -> None:
    env = make(seed=8)
    before = env.get_state()
    with pytest.raises(ValueError, match="action"):
        env.step(bad)  # type: ignore[arg-type]
    np.testing.assert_array_equal(env.get_state(), before)


def test_out_of_box_action_is_clipped_and_reported() -> None:
    a, b = make(seed=9), make(seed=9)
    _, _, _, _, info_a = a.step(np.array([-3.0, 0.1, 1.7, 0.0], dtype=np.float32))
    _, _, _, _, info_b = b.step(np.array([-1.0, 0.1, 1.0, 0.0], dtype=np.float32))
    assert info_a["action_clipped"] is True
    assert info_b["action_clipped"] is False
    np.testing.assert_array_equal(a.get_state(), b.get_state())


# --------------------------------------------------------------------------- rendering


def test_render_is_deterministic_and_shows_discs() -> None:
    env = make(seed=10, image_size=128)
    frame = env.render()
    np.testing.assert_array_equal(frame, env.render())
    p = env.particles(env.get_state())[0]
    col = round((p[0] + granular.TABLE_HALF) * 128 / (2 * granular.TABLE_HALF))
    row = round((granular.TABLE_HALF - p[1]) * 128 / (2 * granular.TABLE_HALF))
    assert tuple(frame[row, col]) == granular._DISC_COLOR
    assert tuple(frame[0, 0]) == granular._TABLE_COLOR


def test_draw_goal_flag_changes_the_frame() -> None:
    plain, with_goal = make(seed=11), make(seed=11, draw_goal=True)
    assert not np.array_equal(plain.render(), with_goal.render())
    g = with_goal.particles(with_goal.goal_state)
    far = np.linalg.norm(g[:, None] - with_goal.particles(with_goal.get_state())[None], axis=2)
    lone = g[far.min(axis=1) > 3 * with_goal.radius]
    if lone.size:  # a goal disc away from every current disc shows the goal colour
        col = round((lone[0, 0] + granular.TABLE_HALF) * 224 / (2 * granular.TABLE_HALF))
        row = round((granular.TABLE_HALF - lone[0, 1]) * 224 / (2 * granular.TABLE_HALF))
        assert tuple(with_goal.render()[row, col]) == granular._GOAL_COLOR


def test_proprio_is_the_board_position() -> None:
    env = make(seed=12)
    obs, *_ = env.step(np.array([0.9, 0.9, 0.8, 0.95], dtype=np.float32))
    np.testing.assert_allclose(obs["proprio"], env.get_state()[-3:-1].astype(np.float32))
    np.testing.assert_allclose(
        obs["proprio"], [0.8 * granular.REACH, 0.95 * granular.REACH], atol=1e-4
    )


def test_pickle_keeps_the_future() -> None:
    env = make(seed=13, draw_goal=True)
    clone = pickle.loads(pickle.dumps(env))
    action = np.array([-0.8, -0.2, 0.3, 0.1], dtype=np.float32)
    np.testing.assert_array_equal(env.step(action)[0]["pixels"], clone.step(action)[0]["pixels"])


# --------------------------------------------------------------------------- policies


def run_episodes(kind: str, episodes: int, steps: int) -> tuple[list[float], list[float], int]:
    env = gym.make("worldplan/Granular-v0", render_pixels=False)
    starts, finals, successes = [], [], 0
    for seed in range(episodes):
        obs, info = env.reset(seed=seed)
        policy = make_policy(env, kind, seed=seed)  # type: ignore[arg-type]
        starts.append(float(info["chamfer"]))
        for _ in range(steps):
            obs, _, _, _, info = env.step(policy(obs, info))
            successes += int(info["is_success"])
        finals.append(float(info["chamfer"]))
    return starts, finals, successes


def test_random_strokes_rarely_succeed_scripted_gathers() -> None:
    _, _, random_successes = run_episodes("random", episodes=4, steps=8)
    assert random_successes <= 1  # of 32 strokes
    starts, finals, _ = run_episodes("scripted", episodes=4, steps=8)
    assert np.mean(finals) < 0.8 * np.mean(starts)


def test_random_policy_strokes_pass_through_a_disc_near_the_middle() -> None:
    env = make(seed=14)
    policy = RandomPolicy(env)
    policy.reset(seed=0)
    p = env.particles(env.get_state())
    middle = np.median(p, axis=0)
    for _ in range(10):
        action = policy({}, {})
        assert action.dtype == np.float32
        assert env.action_space.contains(action)
        start, end = GranularEnv.action_to_stroke(action)
        u = (end - start) / np.linalg.norm(end - start)
        rel = p - start
        along = rel @ u
        off = np.abs(rel @ np.array([-u[1], u[0]]))
        on_line = (off < 1e-4) & (along > 0) & (np.linalg.norm(p - middle, axis=1) < 1.0)
        assert on_line.any()
        assert np.linalg.norm(p - start, axis=1).min() > 2 * env.radius
