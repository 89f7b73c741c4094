"""Record a policy episode in a worldplan env as an animated GIF."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray
from PIL import Image

import sims
from sims.policies import PolicyKind, make_policy

logger = logging.getLogger(__name__)

_FPS = 10


def record_episode(
    env_id: str,
    out: Path,
    seed: int,
    steps: int,
    policy: str = "scripted",
    *,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Path:
    """Run one ``policy`` episode in ``env_id`` and write its frames as a GIF.

    The episode runs for ``steps`` env steps, or fewer if it ends first
    (success or time limit); the GIF holds the first frame and one frame per
    step, at 10 frames per second. The file is written to a temporary file
    beside the target and renamed into place, so a reader never sees half a GIF.

    Args:
        env_id: A registered worldplan env id, e.g. ``"worldplan/PushT-v0"``.
        out: The GIF path (ending in ``.gif``), or a directory in which
            ``<env>_<policy>_seed<seed>.gif`` is written; created if missing.
        seed: Seeds the env's reset and the policy.
        steps: Number of env steps to record, at least 1.
        policy: ``"scripted"`` or ``"random"``.
        env_kwargs: Extra keyword arguments for ``gym.make`` (e.g.
            ``{"draw_goal": True}`` for push-T).

    Returns:
        The path of the GIF written.

    Raises:
        ValueError: For an unknown env id or policy, or ``steps < 1``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if policy not in ("scripted", "random"):
        raise ValueError(f"policy must be 'scripted' or 'random', got {policy!r}")
    if env_id not in sims.ENV_IDS:
        raise ValueError(f"unknown env id {env_id!r}; known: {', '.join(sims.ENV_IDS)}")
    path = _gif_path(Path(out), env_id, policy, seed)
    kind: PolicyKind = "scripted" if policy == "scripted" else "random"
    frames, info = _run(env_id, seed, steps, kind, dict(env_kwargs or {}))
    _write_gif(frames, path)
    logger.info(
        "wrote %s: %d frames, success=%s, %s=%.3f",
        path,
        len(frames),
        info.get("is_success"),
        info.get("metric_name"),
        info.get("metric", float("nan")),
    )
    return path


def _gif_path(out: Path, env_id: str, policy: str, seed: int) -> Path:
    if out.suffix.lower() == ".gif":
        return out
    name = env_id.rsplit("/", maxsplit=1)[-1].lower().replace("-", "_")
    return out / f"{name}_{policy}_seed{seed}.gif"


def _run(
    env_id: str, seed: int, steps: int, policy: PolicyKind, env_kwargs: dict[str, Any]
) -> tuple[list[NDArray[np.uint8]], dict[str, Any]]:
    """Run the episode; return its frames and a summary of its last info."""
    env = gym.make(env_id, **{"render_mode": "rgb_array", **env_kwargs})
    try:
        obs, info = env.reset(seed=seed)
        agent = make_policy(env, policy, seed=seed)
        frames = [np.asarray(obs["pixels"], dtype=np.uint8)]
        for _ in range(steps):
            obs, _, terminated, truncated, info = env.step(agent(obs, info))
            frames.append(np.asarray(obs["pixels"], dtype=np.uint8))
            if terminated or truncated:
                break
        metric_name = str(getattr(env.unwrapped, "metric_name", ""))
        summary = {
            "is_success": bool(info.get("is_success", False)),
            "metric_name": metric_name,
            "metric": float(info.get(metric_name, float("nan"))),
        }
    finally:
        env.close()
    return frames, summary


def _write_gif(frames: list[NDArray[np.uint8]], path: Path) -> None:
    """Write ``frames`` (each (H, W, 3) uint8) as a looping GIF, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(frame) for frame in frames]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            images[0].save(
                fh,
                format="GIF",
                save_all=True,
                append_images=images[1:],
                duration=1000 // _FPS,
                loop=0,
            )
        Path(tmp).chmod(0o644)  # mkstemp creates the file private to its owner
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
