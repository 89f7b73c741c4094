"""Episode datasets: collection into HDF5, a cache of frozen-encoder features, training windows.

One dataset is one HDF5 file::

    data.h5
      attrs: format, version, env_id, env_kwargs (JSON), image_size, steps, policy,
             scripted_fraction, seed, scripted_options (JSON), state_labels (JSON),
             env_action_dim, proprio_dim
      episodes/ep_000000       attrs: complete, policy, env_seed, policy_seed, length
        pixels   uint8   (T+1, H, W, 3)   chunked per frame, lzf-compressed
        actions  float32 (T, env_A)       actions[t] leads frame t to frame t+1
        proprio  float32 (T+1, P)
        state    float64 (T+1, S)         named by the ``state_labels`` attribute
        success  bool    (T+1,)
      features/<encoder_id>-<sha256[:16]>  attrs: encoder_id, sha256, provenance, N, D
        ep_000000  float16 (T+1, N, D)     attrs: complete

``T`` is the number of env steps of the episode (it may end early when the env
terminates). Episode ``i`` is a pure function of ``(seed, i)``: its env seed, policy
seed and policy kind are drawn from ``SeedSequence([seed, i])``. Collection and encoding
write one episode at a time, flush, close the file and only then mark it complete, so an
interrupted run keeps every complete episode; incomplete groups are deleted on resume.
The file is built in memory first for each episode, so the file is open for writing
only for the few milliseconds an episode takes to store.

Shapes: T env steps of an episode, H history (frames of context), f frameskip,
N patch tokens, D feature dim, P proprio dim, S state dim.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import h5py
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from numpy.typing import NDArray
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

import sims  # registers the envs
from sims.policies import make_policy
from world_model.model import NormStats
from world_model.types import Encoder

log = logging.getLogger(__name__)

FORMAT = "worldplan-episodes"
VERSION = 1
POLICIES = ("scripted", "random", "mix")
_EPISODES = "episodes"
_FEATURES = "features"
#: Smallest std of a normalised channel, relative to its mean's magnitude (at least 1).
STD_REL_FLOOR = 1e-2


# ----------------------------------------------------------------------------- collection
@dataclass(frozen=True)
class CollectConfig:
    """What to collect: env, episode count and length, policy mix, image size, seed."""

    #: Registered env id, e.g. ``"worldplan/PushT-v0"``.
    env_id: str
    #: Total episodes the dataset should hold (a re-run continues up to this number).
    episodes: int
    #: Env steps per episode (fewer if the env terminates first).
    steps: int = 100
    #: ``"scripted"``, ``"random"`` or ``"mix"`` (each episode draws one).
    policy: str = "mix"
    #: With ``policy="mix"``: the chance that an episode uses the scripted policy.
    scripted_fraction: float = 0.5
    #: Side of the rendered frames in pixels.
    image_size: int = 64
    #: Base seed; episode ``i`` depends on ``(seed, i)`` only.
    seed: int = 0
    #: Extra env constructor arguments (e.g. ``{"layout": "tworoom"}``).
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    #: Constructor options of the scripted policy (e.g. push-T's ``{"speed": [0.3, 1.0]}``).
    scripted_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.env_id not in gym.registry:
            known = ", ".join(sims.ENV_IDS)
            raise ValueError(f"unknown env id {self.env_id!r}; known: {known}")
        for name in ("episodes", "steps", "image_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if not 0.0 <= self.scripted_fraction <= 1.0:
            raise ValueError(f"scripted_fraction must be in [0, 1], got {self.scripted_fraction}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        for key in ("image_size", "max_episode_steps", "render_mode"):
            if key in self.env_kwargs:
                raise ValueError(f"env_kwargs must not set {key!r}; it is set by collect itself")
        for name in ("env_kwargs", "scripted_options"):
            try:
                json.dumps(getattr(self, name))
            except TypeError as exc:
                raise ValueError(f"{name} must be JSON values: {exc}") from exc

    def file_attrs(self) -> dict[str, Any]:
        """The file-level attributes that must match when a collection is resumed."""
        return {
            "env_id": self.env_id,
            "env_kwargs": json.dumps(self.env_kwargs, sort_keys=True),
            "image_size": self.image_size,
            "steps": self.steps,
            "policy": self.policy,
            "scripted_fraction": float(self.scripted_fraction),
            "seed": self.seed,
            "scripted_options": json.dumps(self.scripted_options, sort_keys=True),
        }


@dataclass(frozen=True)
class Episode:
    """One recorded episode in memory (see the module docstring for the layout)."""

    pixels: NDArray[np.uint8]  # (T+1, H, W, 3)
    actions: NDArray[np.float32]  # (T, env_A)
    proprio: NDArray[np.float32]  # (T+1, P)
    state: NDArray[np.float64]  # (T+1, S)
    success: NDArray[np.bool_]  # (T+1,)
    attrs: dict[str, Any]


def episode_name(index: int) -> str:
    """HDF5 group name of episode ``index``."""
    return f"ep_{index:06d}"


def episode_seeds(seed: int, index: int) -> tuple[int, int, float]:
    """``(env_seed, policy_seed, u)`` of episode ``index``: ``u`` in [0, 1) picks the policy."""
    words = np.random.SeedSequence([seed, index]).generate_state(3, dtype=np.uint32)
    return int(words[0]), int(words[1]), float(words[2]) / 2.0**32


def make_env(cfg: CollectConfig) -> gym.Env[Any, Any]:
    """The env ``cfg`` collects from, with its time limit set to ``cfg.steps``."""
    return gym.make(
        cfg.env_id, image_size=cfg.image_size, max_episode_steps=cfg.steps, **cfg.env_kwargs
    )


def run_episode(env: gym.Env[Any, Any], cfg: CollectConfig, index: int) -> Episode:
    """Run episode ``index`` of ``cfg`` in ``env`` and return it (a pure function of both)."""
    env_seed, policy_seed, u = episode_seeds(cfg.seed, index)
    kind = cfg.policy
    if kind == "mix":
        kind = "scripted" if u < cfg.scripted_fraction else "random"
    options = cfg.scripted_options if kind == "scripted" else {}
    policy = make_policy(env, kind, seed=policy_seed, **options)  # type: ignore[arg-type]
    obs, info = env.reset(seed=env_seed)
    frames, props, states, wins, acts = [obs["pixels"]], [obs["proprio"]], [info["state"]], [], []
    wins.append(bool(info["is_success"]))
    for _ in range(cfg.steps):
        action = np.asarray(policy(obs, info), dtype=np.float32)
        obs, _, terminated, truncated, info = env.step(action)
        acts.append(action)
        frames.append(obs["pixels"])
        props.append(obs["proprio"])
        states.append(info["state"])
        wins.append(bool(info["is_success"]))
        if terminated or truncated:
            break
    attrs = {"policy": kind, "env_seed": env_seed, "policy_seed": policy_seed, "length": len(acts)}
    return Episode(
        pixels=np.stack(frames).astype(np.uint8),
        actions=np.stack(acts).astype(np.float32),
        proprio=np.stack(props).astype(np.float32),
        state=np.stack(states).astype(np.float64),
        success=np.asarray(wins, dtype=bool),
        attrs=attrs,
    )


def _mark_complete(group: h5py.Group) -> None:
    """Flag a fully written group as complete (the last write of an episode)."""
    group.attrs["complete"] = True


def write_episode(path: Path, index: int, episode: Episode) -> None:
    """Append ``episode`` as ``episodes/ep_<index>``, flush, then mark it complete."""
    with h5py.File(path, "a") as f:
        parent = f.require_group(_EPISODES)
        name = episode_name(index)
        if name in parent:
            del parent[name]
        g = parent.create_group(name)
        g.attrs["complete"] = False
        for key, value in episode.attrs.items():
            g.attrs[key] = value
        px = episode.pixels
        g.create_dataset(
            "pixels", data=px, chunks=(1, *px.shape[1:]), compression="lzf", shuffle=True
        )
        g.create_dataset("actions", data=episode.actions)
        g.create_dataset("proprio", data=episode.proprio)
        g.create_dataset("state", data=episode.state)
        g.create_dataset("success", data=episode.success)
        f.flush()
        _mark_complete(g)
        f.flush()


def _create_file(path: Path, cfg: CollectConfig, env: gym.Env[Any, Any]) -> None:
    """Write an empty dataset with its metadata to a temporary file and rename it into place."""
    base = env.unwrapped
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        for key, value in cfg.file_attrs().items():
            f.attrs[key] = value
        f.attrs["state_labels"] = json.dumps(list(base.state_labels))  # type: ignore[attr-defined]
        f.attrs["env_action_dim"] = int(np.prod(env.action_space.shape or (1,)))
        f.attrs["proprio_dim"] = int(env.observation_space["proprio"].shape[0])  # type: ignore[index]
        f.create_group(_EPISODES)
    tmp.replace(path)


def _check_resume(path: Path, cfg: CollectConfig) -> None:
    """Raise unless the existing file at ``path`` was collected with the same settings."""
    meta = read_meta(path)
    for key, want in cfg.file_attrs().items():
        got = meta.get(key)
        if got != want:
            raise ValueError(
                f"{path} was collected with {key}={got!r}, this run asks for {want!r}: "
                "use the same settings to resume, or another --out path"
            )


def drop_incomplete(path: Path, group: str = _EPISODES) -> list[str]:
    """Delete the incomplete members of ``group`` left by an interrupted run; return them."""
    with h5py.File(path, "a") as f:
        parent = f.get(group)
        if parent is None:
            return []
        bad = [k for k in parent if not bool(parent[k].attrs.get("complete", False))]
        for key in bad:
            del parent[key]
    if bad:
        log.warning("%s: dropped %d incomplete entries of %s: %s", path, len(bad), group, bad)
    return bad


def complete_episodes(path: str | Path) -> list[str]:
    """Names of the complete episodes of a dataset, in order."""
    with h5py.File(path, "r") as f:
        eps = f.get(_EPISODES, {})
        return sorted(k for k in eps if bool(eps[k].attrs.get("complete", False)))


def collect(cfg: CollectConfig, path: str | Path, *, progress: bool = True) -> int:
    """Collect episodes into ``path`` until it holds ``cfg.episodes`` complete ones.

    Resumes an existing file (same settings required); returns the number of
    episodes written by this call.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = make_env(cfg)
    try:
        if path.exists():
            _check_resume(path, cfg)
            drop_incomplete(path)
        else:
            _create_file(path, cfg, env)
        done = set(complete_episodes(path))
        todo = [i for i in range(cfg.episodes) if episode_name(i) not in done]
        bar = tqdm(total=cfg.episodes, initial=cfg.episodes - len(todo), disable=not progress,
                   desc=f"collect {cfg.env_id}", unit="ep")  # fmt: skip
        with bar:
            for index in todo:
                write_episode(path, index, run_episode(env, cfg, index))
                bar.update(1)
    finally:
        env.close()
    return len(todo)


def read_meta(path: str | Path) -> dict[str, Any]:
    """File-level metadata of a dataset, with ``env_kwargs`` and ``state_labels`` decoded."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset {path} does not exist; create it with `worldplan collect`"
        )
    try:
        with h5py.File(path, "r") as f:
            meta = {k: _plain(v) for k, v in f.attrs.items()}
    except OSError as exc:
        raise ValueError(f"{path} is not a readable HDF5 file: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} dataset (format attr {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path} has dataset version {meta.get('version')}, expected {VERSION}")
    meta["env_kwargs_dict"] = json.loads(meta["env_kwargs"])
    meta["state_labels"] = tuple(json.loads(meta["state_labels"]))
    return meta


def _plain(value: Any) -> Any:
    """HDF5 attribute value -> plain Python (numpy scalars to int/float/bool/str)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


# ----------------------------------------------------------------------------- feature cache
def feature_key(encoder: Encoder) -> str:
    """Cache group name of an encoder: its id and the start of its weights' sha256."""
    digest = encoder.weights_sha256[:16] if encoder.weights_sha256 else "noweights"
    return f"{encoder.encoder_id.replace('/', '_')}-{digest}"


def _features_group(f: h5py.File, encoder: Encoder) -> h5py.Group:
    """The encoder's cache group, created with its attributes or checked against them."""
    g = f.require_group(_FEATURES).require_group(feature_key(encoder))
    want = {
        "encoder_id": encoder.encoder_id,
        "sha256": encoder.weights_sha256,
        "provenance": encoder.provenance,
        "num_patches": int(encoder.num_patches),
        "embed_dim": int(encoder.embed_dim),
    }
    for key, value in want.items():
        if key not in g.attrs:
            g.attrs[key] = value
        elif _plain(g.attrs[key]) != value and key != "provenance":
            raise ValueError(f"feature cache {g.name} has {key}={g.attrs[key]!r}, not {value!r}")
    return g


def encode_frames(encoder: Encoder, pixels: NDArray[np.uint8], batch: int) -> NDArray[np.float16]:
    """Encode frames (T, H, W, 3) in batches -> fp16 features (T, N, D)."""
    out = []
    for start in range(0, len(pixels), batch):
        images = torch.from_numpy(np.ascontiguousarray(pixels[start : start + batch]))
        with torch.no_grad():
            feats = encoder(images)  # (b, N, D)
        out.append(feats.detach().to("cpu", torch.float16).numpy())
    return np.concatenate(out)


def encode_dataset(
    path: str | Path, encoder: Encoder, *, batch_size: int = 64, progress: bool = True
) -> str:
    """Cache ``encoder``'s features of every complete episode; resumable. Returns the cache key."""
    path = Path(path)
    read_meta(path)
    key = feature_key(encoder)
    drop_incomplete(path, f"{_FEATURES}/{key}")
    episodes = complete_episodes(path)
    with h5py.File(path, "a") as f:
        g = _features_group(f, encoder)
        todo = [e for e in episodes if not (e in g and bool(g[e].attrs.get("complete", False)))]
    bar = tqdm(total=len(episodes), initial=len(episodes) - len(todo), disable=not progress,
               desc=f"encode {encoder.encoder_id}", unit="ep")  # fmt: skip
    with bar:
        for name in todo:
            with h5py.File(path, "r") as f:
                pixels = f[_EPISODES][name]["pixels"][()]
            feats = encode_frames(encoder, pixels, batch_size)  # (T+1, N, D)
            _write_features(path, key, name, feats)
            bar.update(1)
    return key


def _write_features(path: Path, key: str, name: str, feats: NDArray[np.float16]) -> None:
    with h5py.File(path, "a") as f:
        g = f[_FEATURES][key]
        if name in g:
            del g[name]
        ds = g.create_dataset(name, data=feats, chunks=(1, *feats.shape[1:]))
        ds.attrs["complete"] = False
        f.flush()
        _mark_complete(ds)
        f.flush()


def feature_caches(path: str | Path) -> dict[str, dict[str, Any]]:
    """The feature caches of a dataset: key -> attributes plus ``episodes`` (complete count)."""
    out: dict[str, dict[str, Any]] = {}
    with h5py.File(path, "r") as f:
        for key, g in f.get(_FEATURES, {}).items():
            info = {k: _plain(v) for k, v in g.attrs.items()}
            info["episodes"] = sum(bool(g[e].attrs.get("complete", False)) for e in g)
            out[key] = info
    return out


# ----------------------------------------------------------------------------- probe targets
StateFn = Callable[[tuple[str, ...], NDArray[np.float64]], tuple[tuple[str, ...], NDArray[Any]]]


def _pick(labels: tuple[str, ...], states: NDArray[np.float64], keep: tuple[str, ...]) -> Any:
    missing = [k for k in keep if k not in labels]
    if missing:
        raise ValueError(f"dataset state lacks {missing}; it has {list(labels)}")
    return states[:, [labels.index(k) for k in keep]]


def _pusht_state(labels: tuple[str, ...], s: NDArray[np.float64]) -> tuple[tuple[str, ...], Any]:
    pos = _pick(labels, s, ("agent_x", "agent_y", "block_x", "block_y"))
    angle = _pick(labels, s, ("block_angle",))
    values = np.concatenate([pos, np.cos(angle), np.sin(angle)], axis=1)
    names = ("agent_x", "agent_y", "block_x", "block_y", "block_angle_cos", "block_angle_sin")
    return names, values


def _maze_state(labels: tuple[str, ...], s: NDArray[np.float64]) -> tuple[tuple[str, ...], Any]:
    keep = ("agent_x", "agent_y", "agent_vx", "agent_vy")
    return keep, _pick(labels, s, keep)


def _granular_state(labels: tuple[str, ...], s: NDArray[np.float64]) -> tuple[tuple[str, ...], Any]:
    xs = [i for i, k in enumerate(labels) if k.startswith("p") and k.endswith("_x") and "_" in k]
    xs = [i for i in xs if not labels[i].startswith("pusher")]
    pts = np.stack([s[:, xs], s[:, [i + 1 for i in xs]]], axis=-1)  # (T, n, 2)
    centre = pts.mean(axis=1)  # (T, 2)
    spread = np.sqrt(((pts - centre[:, None]) ** 2).sum(-1).mean(1, keepdims=True))  # (T, 1)
    pusher = _pick(labels, s, ("pusher_x", "pusher_y"))
    names = ("pile_x", "pile_y", "pile_spread", "pusher_x", "pusher_y")
    return names, np.concatenate([centre, spread, pusher], axis=1)


#: Per env: env state -> what the state probe learns (names and values, env units).
#: push-T's angle becomes (cos, sin) so that the probe's target has no jump at 2 pi;
#: granular's ~200 disc coordinates become the pile's centroid and RMS radius.
PROBE_TARGETS: dict[str, StateFn] = {
    "worldplan/PushT-v0": _pusht_state,
    "worldplan/Maze-v0": _maze_state,
    "worldplan/Granular-v0": _granular_state,
}


def probe_targets(
    env_id: str, labels: tuple[str, ...], states: NDArray[np.float64]
) -> tuple[tuple[str, ...], NDArray[np.float32]]:
    """The state probe's targets ``(names, (T, S') values)`` for env states ``(T, S)``."""
    fn = PROBE_TARGETS.get(env_id)
    if fn is None:
        raise ValueError(f"no probe targets for env {env_id!r}; known: {sorted(PROBE_TARGETS)}")
    names, values = fn(labels, np.asarray(states, dtype=np.float64))
    return names, np.asarray(values, dtype=np.float32)


# ----------------------------------------------------------------------------- training data
@dataclass(frozen=True)
class EpisodeArrays:
    """One episode in memory for training: cached features and the matching raw arrays."""

    name: str
    features: NDArray[np.float16]  # (T+1, N, D)
    proprio: NDArray[np.float32]  # (T+1, P)
    actions: NDArray[np.float32]  # (T, env_A)
    state: NDArray[np.float32]  # (T+1, S') probe targets
    pixels: NDArray[np.uint8] | None  # (T+1, s, s, 3) downsampled for the decoder, or None


@dataclass(frozen=True)
class TrainingData:
    """A dataset loaded for training: metadata, the encoder cache used, the episodes."""

    path: Path
    meta: dict[str, Any]
    cache: dict[str, Any]
    probe_labels: tuple[str, ...]
    episodes: list[EpisodeArrays]

    @property
    def env_steps(self) -> int:
        """Env steps (actions) over all episodes."""
        return sum(len(e.actions) for e in self.episodes)


def pick_cache(path: str | Path, key: str | None = None) -> str:
    """The feature cache to train on: ``key``, or the only complete one."""
    caches = feature_caches(path)
    total = len(complete_episodes(path))
    full = [k for k, v in caches.items() if v["episodes"] == total and total > 0]
    if key is not None:
        if key not in caches:
            raise ValueError(f"{path} has no feature cache {key!r}; it has {sorted(caches)}")
        if key not in full:
            raise ValueError(f"feature cache {key!r} covers {caches[key]['episodes']}/{total} "
                             "episodes: re-run `worldplan encode` to finish it")  # fmt: skip
        return key
    if len(full) != 1:
        raise ValueError(
            f"{path} has {len(full)} complete feature caches {full}: run `worldplan encode` first"
            if not full
            else f"{path} has several feature caches {full}: choose one with --features"
        )
    return full[0]


def _downsample(pixels: NDArray[np.uint8], size: int) -> NDArray[np.uint8]:
    """(T, H, W, 3) uint8 -> (T, size, size, 3) uint8 by area averaging."""
    if pixels.shape[1] == size and pixels.shape[2] == size:
        return pixels
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    x = F.interpolate(x, size=(size, size), mode="area")  # (T, 3, s, s)
    out: NDArray[np.uint8] = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def load_training_data(
    path: str | Path, key: str | None = None, *, pixel_size: int | None = 64
) -> TrainingData:
    """Load a dataset's cached features, proprio, actions, probe targets (and small pixels).

    Args:
        path: The dataset file.
        key: Feature cache key; ``None`` picks the only complete one.
        pixel_size: Side of the frames kept for the decoder; ``None`` keeps none.
    """
    path = Path(path)
    meta = read_meta(path)
    key = pick_cache(path, key)
    episodes: list[EpisodeArrays] = []
    names: tuple[str, ...] = ()
    with h5py.File(path, "r") as f:
        cache = {k: _plain(v) for k, v in f[_FEATURES][key].attrs.items()}
        cache["key"] = key
        for name in complete_episodes(path):
            g = f[_EPISODES][name]
            names, state = probe_targets(meta["env_id"], meta["state_labels"], g["state"][()])
            pixels = g["pixels"][()] if pixel_size else None
            episodes.append(
                EpisodeArrays(
                    name=name,
                    features=f[_FEATURES][key][name][()],
                    proprio=g["proprio"][()].astype(np.float32),
                    actions=g["actions"][()].astype(np.float32),
                    state=state,
                    pixels=_downsample(pixels, pixel_size) if pixels is not None and pixel_size
                    else None,
                )
            )  # fmt: skip
    if not episodes:
        raise ValueError(f"{path} has no complete episodes")
    return TrainingData(path, meta, cache, names, episodes)


def split_episodes(count: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split episode indices into (train, val) by a seeded shuffle.

    The validation split gets at least one episode when ``val_fraction > 0`` and there
    are two or more episodes, and never all of them.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(count).tolist()
    n_val = math.ceil(val_fraction * count) if val_fraction > 0 and count >= 2 else 0
    n_val = min(n_val, count - 1)
    return sorted(order[n_val:]), sorted(order[:n_val])


def planning_actions(actions: NDArray[np.float32], frameskip: int) -> NDArray[np.float32]:
    """Every run of ``frameskip`` consecutive env actions, concatenated: (T, A) -> (T-f+1, f A)."""
    t, a = actions.shape
    if t < frameskip:
        return np.zeros((0, frameskip * a), dtype=np.float32)
    idx = np.arange(t - frameskip + 1)[:, None] + np.arange(frameskip)[None, :]  # (T-f+1, f)
    return actions[idx].reshape(-1, frameskip * a)


def compute_stats(episodes: list[EpisodeArrays], frameskip: int) -> NormStats:
    """Normalisation statistics of the (training) episodes.

    Action statistics are per planning-action dim over every run of ``frameskip``
    consecutive env actions; proprio and state statistics over every frame.
    """
    if not episodes:
        raise ValueError("normalisation statistics need at least one episode")
    acts = np.concatenate([planning_actions(e.actions, frameskip) for e in episodes])
    if len(acts) == 0:
        raise ValueError(f"no episode has {frameskip} actions (frameskip); collect longer ones")
    proprio = np.concatenate([e.proprio for e in episodes])
    state = np.concatenate([e.state for e in episodes])
    stats = NormStats.from_data(acts, proprio, state)
    floored = {k: _floor_std(v, stats.as_dict()[k.replace("std", "mean")]) if k.endswith("std")
               else v for k, v in stats.as_dict().items()}  # fmt: skip
    return NormStats(**floored)


def _floor_std(std: Tensor, mean: Tensor) -> Tensor:
    """Raise a (near-)constant channel's std to ``STD_REL_FLOOR * max(|mean|, 1)``.

    A channel the training data never moves (a block no episode touched) would
    otherwise turn tiny validation differences into enormous normalised errors.
    """
    return torch.maximum(std, STD_REL_FLOOR * mean.abs().clamp_min(1.0))


class WindowDataset(Dataset[dict[str, Tensor]]):
    """Training windows of ``history`` planning steps with frameskip ``f``.

    Window ``(e, t0)`` has frames ``t0, t0 + f, ..., t0 + H f`` of episode ``e`` and
    planning actions ``actions[h] = concat(env actions t0 + h f .. t0 + h f + f - 1)``,
    the ``f`` env actions that lead frame ``h`` to frame ``h + 1``.

    Items: ``visual`` (H+1, N, D) float32, ``proprio`` (H+1, P) raw, ``actions``
    (H, f env_A) env units, ``state`` (H+1, S') probe targets env units, and
    ``pixels`` (H+1, s, s, 3) uint8 when the episodes carry pixels.
    """

    def __init__(self, episodes: list[EpisodeArrays], history: int, frameskip: int) -> None:
        if history < 1 or frameskip < 1:
            raise ValueError(f"history and frameskip must be >= 1, got {history}, {frameskip}")
        self.episodes = episodes
        self.history = history
        self.frameskip = frameskip
        span = history * frameskip
        self.index = [
            (e, t0) for e, ep in enumerate(episodes) for t0 in range(len(ep.actions) - span + 1)
        ]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        e, t0 = self.index[i]
        ep = self.episodes[e]
        h, f = self.history, self.frameskip
        frames = slice(t0, t0 + h * f + 1, f)  # H+1 frames
        acts = ep.actions[t0 : t0 + h * f].reshape(h, -1)  # (H, f*env_A)
        item = {
            "visual": torch.from_numpy(ep.features[frames].astype(np.float32)),  # (H+1, N, D)
            "proprio": torch.from_numpy(ep.proprio[frames]),  # (H+1, P)
            "actions": torch.from_numpy(np.ascontiguousarray(acts)),  # (H, A)
            "state": torch.from_numpy(ep.state[frames]),  # (H+1, S')
        }
        if ep.pixels is not None:
            item["pixels"] = torch.from_numpy(ep.pixels[frames])  # (H+1, s, s, 3)
        return item

    def batch(self, indices: list[int] | Tensor) -> dict[str, Tensor]:
        """Stack the items ``indices`` into a batch (leading dim B)."""
        items = [self[int(i)] for i in indices]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}


#: Short names accepted wherever an env id is asked for.
ENV_ALIASES = {
    "pusht": "worldplan/PushT-v0",
    "maze": "worldplan/Maze-v0",
    "granular": "worldplan/Granular-v0",
}


def resolve_env_id(name: str) -> str:
    """A registered env id from an id or a short name (``pusht``, ``maze``, ``granular``)."""
    env_id = ENV_ALIASES.get(name.lower(), name)
    if env_id not in sims.ENV_IDS:
        known = ", ".join([*ENV_ALIASES, *sims.ENV_IDS])
        raise ValueError(f"unknown env {name!r}; known: {known}")
    return env_id


def parse_env_kwargs(args: list[str]) -> dict[str, Any]:
    """``["--layout", "tworoom", "--door-y", "30"]`` -> ``{"layout": "tworoom", "door_y": 30}``.

    Values are read as JSON where they parse (numbers, ``true``/``false``, ``null``);
    ``True``/``False`` are booleans too; anything else stays a string.
    """
    if len(args) % 2:
        raise ValueError(f"env options must come as --name value pairs, got {args}")
    out: dict[str, Any] = {}
    for flag, raw in zip(args[::2], args[1::2], strict=True):
        if not flag.startswith("--") or len(flag) < 3:
            raise ValueError(f"env option names start with --, got {flag!r}")
        value: Any
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = {"True": True, "False": False}.get(raw, raw)
        out[flag[2:].replace("-", "_")] = value
    return out
