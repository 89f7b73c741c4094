"""Episode datasets: collection, resumption, feature cache, windows, statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from tiny_model import TinyEncoder

from world_model import data
from world_model.data import (
    CollectConfig,
    EpisodeArrays,
    WindowDataset,
    collect,
    compute_stats,
    encode_dataset,
    episode_name,
    feature_key,
    make_env,
    read_meta,
    run_episode,
    split_episodes,
)
from world_model.model import pack_actions

PUSHT = "worldplan/PushT-v0"


def _cfg(**kw: Any) -> CollectConfig:
    base: dict[str, Any] = {
        "env_id": PUSHT,
        "episodes": 3,
        "steps": 6,
        "image_size": 32,
        "seed": 7,
        "env_kwargs": {"terminate_on_success": False},
    }
    base.update(kw)
    return CollectConfig(**base)


def _episode_bytes(path: Path) -> dict[str, dict[str, bytes]]:
    out: dict[str, dict[str, bytes]] = {}
    with h5py.File(path, "r") as f:
        for name, g in f["episodes"].items():
            out[name] = {k: g[k][()].tobytes() for k in g}
            out[name]["attrs"] = repr(sorted((k, str(v)) for k, v in g.attrs.items())).encode()
    return out


def test_collect_writes_episodes_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "d.h5"
    assert collect(_cfg(), path, progress=False) == 3
    meta = read_meta(path)
    assert meta["env_id"] == PUSHT
    assert meta["image_size"] == 32
    assert meta["env_kwargs_dict"] == {"terminate_on_success": False}
    assert meta["state_labels"][:2] == ("agent_x", "agent_y")
    assert (meta["env_action_dim"], meta["proprio_dim"]) == (2, 4)
    assert data.complete_episodes(path) == [episode_name(i) for i in range(3)]
    with h5py.File(path, "r") as f:
        g = f["episodes/ep_000001"]
        assert g["pixels"].shape == (7, 32, 32, 3)
        assert g["pixels"].dtype == np.uint8
        assert g["pixels"].compression == "lzf"
        assert g["pixels"].chunks == (1, 32, 32, 3)
        assert g["actions"].shape == (6, 2)
        assert g["actions"].dtype == np.float32
        assert g["proprio"].shape == (7, 4)
        assert g["state"].shape == (7, 7)
        assert bool(g.attrs["complete"])
        # the recorded proprio is the agent position of the recorded state
        np.testing.assert_allclose(g["proprio"][:, :2], g["state"][:, :2], rtol=1e-5)


def test_episode_is_a_function_of_seed_and_index(tmp_path: Path) -> None:
    path = tmp_path / "d.h5"
    collect(_cfg(), path, progress=False)
    env = make_env(_cfg())
    again = run_episode(env, _cfg(), 2)
    other_seed = run_episode(env, _cfg(seed=8), 2)
    with h5py.File(path, "r") as f:
        stored = f["episodes/ep_000002/pixels"][()]
        np.testing.assert_array_equal(stored, again.pixels)
        assert not np.array_equal(stored, other_seed.pixels)
        assert not np.array_equal(stored, f["episodes/ep_000001/pixels"][()])


def test_mix_policy_uses_both_kinds(tmp_path: Path) -> None:
    path = tmp_path / "d.h5"
    collect(_cfg(episodes=8, steps=2, scripted_fraction=0.5), path, progress=False)
    with h5py.File(path, "r") as f:
        kinds = {str(g.attrs["policy"]) for g in f["episodes"].values()}
    assert kinds == {"scripted", "random"}


def test_interrupted_collect_resumes_without_losing_episodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = tmp_path / "ref.h5"
    collect(_cfg(episodes=4), ref, progress=False)

    path = tmp_path / "d.h5"
    real_mark = data._mark_complete
    calls = {"n": 0}

    def crash_on_third(group: h5py.Group) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed while episode 2 is being written
        real_mark(group)

    monkeypatch.setattr(data, "_mark_complete", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        collect(_cfg(episodes=4), path, progress=False)
    monkeypatch.setattr(data, "_mark_complete", real_mark)

    with h5py.File(path, "r") as f:  # the half-written episode is there but not complete
        assert "ep_000002" in f["episodes"]
        assert not bool(f["episodes/ep_000002"].attrs["complete"])
    before = _episode_bytes(path)
    assert data.complete_episodes(path) == ["ep_000000", "ep_000001"]

    assert collect(_cfg(episodes=4), path, progress=False) == 2  # redoes 2, does 3
    after = _episode_bytes(path)
    for name in ("ep_000000", "ep_000001"):
        assert after[name] == before[name]
    assert after == _episode_bytes(ref)  # same as a run that was never interrupted


def test_resume_extends_and_rejects_other_settings(tmp_path: Path) -> None:
    path = tmp_path / "d.h5"
    collect(_cfg(episodes=2), path, progress=False)
    assert collect(_cfg(episodes=3), path, progress=False) == 1
    assert collect(_cfg(episodes=3), path, progress=False) == 0
    with pytest.raises(ValueError, match="seed=7"):
        collect(_cfg(episodes=4, seed=9), path, progress=False)
    with pytest.raises(ValueError, match="image_size"):
        collect(_cfg(episodes=4, image_size=48), path, progress=False)


def test_bad_collect_settings_are_explained() -> None:
    with pytest.raises(ValueError, match="unknown env id"):
        _cfg(env_id="worldplan/Nope-v0")
    with pytest.raises(ValueError, match="policy must be one of"):
        _cfg(policy="greedy")
    with pytest.raises(ValueError, match="episodes must be a positive int"):
        _cfg(episodes=0)
    with pytest.raises(ValueError, match="must not set 'image_size'"):
        _cfg(env_kwargs={"image_size": 3})


def test_env_names_and_options_from_the_command_line() -> None:
    assert data.resolve_env_id("maze") == "worldplan/Maze-v0"
    assert data.resolve_env_id(PUSHT) == PUSHT
    with pytest.raises(ValueError, match="known: pusht"):
        data.resolve_env_id("cartpole")
    got = data.parse_env_kwargs(["--layout", "tworoom", "--door-y", "30", "--draw-goal", "True"])
    assert got == {"layout": "tworoom", "door_y": 30, "draw_goal": True}
    with pytest.raises(ValueError, match="pairs"):
        data.parse_env_kwargs(["--layout"])


def test_collect_maze_layout_option(tmp_path: Path) -> None:
    path = tmp_path / "m.h5"
    cfg = CollectConfig("worldplan/Maze-v0", episodes=1, steps=3, image_size=32,
                        env_kwargs={"layout": "tworoom"})  # fmt: skip
    collect(cfg, path, progress=False)
    meta = read_meta(path)
    assert meta["env_kwargs_dict"] == {"layout": "tworoom"}
    with h5py.File(path, "r") as f:
        state = f["episodes/ep_000000/state"][()]
    layout = meta["state_labels"].index("layout")
    assert len(set(state[:, layout].tolist())) == 1


def test_encode_caches_fp16_features_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "d.h5"
    collect(_cfg(), path, progress=False)
    enc = TinyEncoder()
    real_mark = data._mark_complete

    def crash_on_second(ds: h5py.Dataset, calls: list[int] = []) -> None:  # noqa: B006
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_mark(ds)

    monkeypatch.setattr(data, "_mark_complete", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        encode_dataset(path, enc, batch_size=4, progress=False)
    monkeypatch.setattr(data, "_mark_complete", real_mark)
    assert data.feature_caches(path)[feature_key(enc)]["episodes"] == 1

    key = encode_dataset(path, enc, batch_size=4, progress=False)
    assert key == feature_key(enc)
    assert key.startswith("tiny_test_encoder-")
    assert enc.weights_sha256[:16] in key
    caches = data.feature_caches(path)
    assert caches[key]["episodes"] == 3
    assert caches[key]["sha256"] == enc.weights_sha256
    with h5py.File(path, "r") as f:
        feats = f[f"features/{key}/ep_000001"][()]
        pixels = f["episodes/ep_000001/pixels"][()]
    assert feats.dtype == np.float16
    assert feats.shape == (7, 16, 8)
    want = enc(torch.from_numpy(pixels)).numpy()
    np.testing.assert_allclose(feats.astype(np.float32), want, atol=2e-3, rtol=2e-3)


def _hand_episode(steps: int, offset: float = 0.0, name: str = "ep") -> EpisodeArrays:
    t = np.arange(steps + 1, dtype=np.float32)
    feats = np.broadcast_to(t[:, None, None], (steps + 1, 4, 2)).astype(np.float16)
    acts = np.stack([t[:-1] + offset, 100 + t[:-1] + offset], axis=1)  # row t = (t, 100 + t)
    return EpisodeArrays(
        name=name,
        features=feats,
        proprio=np.stack([t, -t], axis=1) + offset,
        actions=acts.astype(np.float32),
        state=np.stack([t * 2, t * 3, t * 4], axis=1).astype(np.float32) + offset,
        pixels=None,
    )


def test_windows_concatenate_the_env_actions_between_frames() -> None:
    ep = _hand_episode(steps=11)
    ds = WindowDataset([ep], history=2, frameskip=3)
    assert len(ds) == 11 - 2 * 3 + 1
    item = ds[4]  # t0 = 4: frames 4, 7, 10
    assert item["visual"].shape == (3, 4, 2)
    assert item["visual"].dtype == torch.float32
    assert item["visual"][:, 0, 0].tolist() == [4.0, 7.0, 10.0]
    assert item["proprio"][:, 0].tolist() == [4.0, 7.0, 10.0]
    assert item["state"][:, 0].tolist() == [8.0, 14.0, 20.0]
    # planning action h = env actions t0 + 3h, t0 + 3h + 1, t0 + 3h + 2, each (t, 100 + t)
    assert item["actions"].tolist() == [
        [4.0, 104.0, 5.0, 105.0, 6.0, 106.0],
        [7.0, 107.0, 8.0, 108.0, 9.0, 109.0],
    ]
    # the same layout as the model's pack_actions
    env_actions = torch.from_numpy(ep.actions[4:10])[None]
    assert torch.equal(pack_actions(env_actions, 3)[0], item["actions"])
    batch = ds.batch([0, 5])
    assert batch["actions"].shape == (2, 2, 6)
    assert batch["actions"][1, 0, 0] == 5.0  # last window: t0 = 5, frames 5, 8, 11


def test_short_episodes_give_no_windows() -> None:
    assert len(WindowDataset([_hand_episode(steps=5)], history=2, frameskip=3)) == 0
    assert len(WindowDataset([_hand_episode(steps=6)], history=2, frameskip=3)) == 1


def test_normalisation_stats_of_the_training_episodes() -> None:
    eps = [_hand_episode(steps=9), _hand_episode(steps=6, offset=5.0)]
    stats = compute_stats(eps, frameskip=2)
    blocks = np.concatenate([data.planning_actions(e.actions, 2) for e in eps])
    assert blocks.shape == (8 + 5, 4)
    np.testing.assert_allclose(stats.action_mean.numpy(), blocks.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats.action_std.numpy(), blocks.std(0), rtol=1e-5)
    # dim 0 is the first env action's x: rows t = 0..7 and 5..10
    np.testing.assert_allclose(float(stats.action_mean[0]), np.mean([*range(8), *range(5, 10)]))
    prop = np.concatenate([e.proprio for e in eps])
    np.testing.assert_allclose(stats.proprio_mean.numpy(), prop.mean(0), rtol=1e-6)
    states = np.concatenate([e.state for e in eps])
    np.testing.assert_allclose(stats.state_std.numpy(), states.std(0), rtol=1e-5)
    # validation episodes are left out by the caller: stats see only what they are given
    shifted = compute_stats([*eps, _hand_episode(steps=9, offset=1000.0)], frameskip=2)
    assert float(shifted.action_mean[0]) > float(stats.action_mean[0]) + 100
    with pytest.raises(ValueError, match="frameskip"):
        compute_stats([_hand_episode(steps=1)], frameskip=2)


def test_split_is_by_episode_deterministic_and_disjoint() -> None:
    train, val = split_episodes(20, 0.2, seed=3)
    assert len(val) == 4
    assert len(train) == 16
    assert sorted(train + val) == list(range(20))
    assert split_episodes(20, 0.2, seed=3) == (train, val)
    assert split_episodes(20, 0.2, seed=4) != (train, val)
    assert split_episodes(2, 0.1, seed=0)[1] != []  # at least one validation episode
    assert split_episodes(1, 0.5, seed=0) == ([0], [])
    with pytest.raises(ValueError, match="val_fraction"):
        split_episodes(4, 1.0, seed=0)


def test_probe_targets_per_env() -> None:
    labels = ("agent_x", "agent_y", "block_x", "block_y", "block_angle", "agent_vx", "agent_vy")
    s = np.array([[1, 2, 3, 4, 0.0, 9, 9], [1, 2, 3, 4, 2 * np.pi - 0.1, 9, 9]])
    names, v = data.probe_targets(PUSHT, labels, s)
    assert names[-2:] == ("block_angle_cos", "block_angle_sin")
    np.testing.assert_allclose(v[:, 4], [1.0, np.cos(0.1)], rtol=1e-6)
    np.testing.assert_allclose(v[:, 5], [0.0, -np.sin(0.1)], atol=1e-6)
    g_labels = ("p000_x", "p000_y", "p001_x", "p001_y", "pusher_x", "pusher_y", "pusher_angle")
    g = np.array([[0.0, 0.0, 2.0, 0.0, 5.0, 6.0, 0.3]])
    names, v = data.probe_targets("worldplan/Granular-v0", g_labels, g)
    assert names == ("pile_x", "pile_y", "pile_spread", "pusher_x", "pusher_y")
    np.testing.assert_allclose(v[0], [1.0, 0.0, 1.0, 5.0, 6.0])


def test_constant_channels_get_a_floored_std() -> None:
    ep = _hand_episode(steps=6)
    const = EpisodeArrays(ep.name, ep.features, ep.proprio, ep.actions,
                          np.full_like(ep.state, 250.0), None)  # fmt: skip
    stats = compute_stats([const], frameskip=2)
    np.testing.assert_allclose(stats.state_std.numpy(), 2.5)  # 1e-2 x |mean|
    assert float(stats.state_mean[0]) == 250.0
