"""The ranking proxy: does latent distance to a goal rank states by their true distance?

For an env, a goal state and ``n`` states around it are rendered; each frame is
encoded and its latent distance to the goal's (mean squared error over all
tokens, the planner's objective) is compared with the true distance:

* Spearman rank correlation over all states;
* AUC: the chance that a far state is further from the goal in latent space
  than a near one;
* near-only Spearman, over the states nearest the goal, which is what the final
  alignment of a plan depends on;
* far-only Spearman, over the states away from the goal, where a planner starting far
  needs the distance to keep growing (raw pixels go flat once nothing overlaps).

push-T (as in the reference measurement): goal pose (256, 256, pi/4); variant
``"block"`` perturbs the block pose, ``"agent"`` moves the pusher too. True
distance in success units: block (and pusher) displacement / 20 px + angle error
/ (pi / 9). Near: d < 2, far: d > 4, near-only: d < 4, far-only: d > 2.

Other envs: states interpolated between the goal and the env's own start states
(maze: positions, granular: disc configurations), true distance = the env's task
metric (``distance``, ``chamfer``); near / far / near-only / far-only are the lowest
third, highest third, lowest half and highest half of the true distances.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

#: push-T success units: 20 px of displacement, pi / 9 of rotation.
PUSHT_POS_UNIT = 20.0
PUSHT_ANGLE_UNIT = math.pi / 9
PUSHT_ID = "worldplan/PushT-v0"


@dataclass(frozen=True)
class RankQuality:
    """Proxy scores of one encoder on one env and variant."""

    env_id: str
    variant: str
    n: int
    spearman: float
    auc: float
    near_spearman: float
    far_spearman: float
    n_near: int
    n_far: int

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)


def spearman(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0


def _ranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Ranks 1..n, ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(x))
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]  # start of each run of equal values
    run = first.cumsum()[inverse]  # (n,) run index of each element, from 1
    bounds = np.r_[np.nonzero(first)[0], len(x)]  # start of each run, then n
    ranks: NDArray[np.float64] = 0.5 * (bounds[run] + bounds[run - 1] + 1)
    return ranks


def auc(near: NDArray[np.float64], far: NDArray[np.float64]) -> float:
    """P(far > near) + P(equal) / 2 over all pairs (Mann-Whitney)."""
    if len(near) == 0 or len(far) == 0:
        return float("nan")
    diff = far[None, :] - near[:, None]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def _pusht_states(
    goal: NDArray[np.float64], n: int, rng: np.random.Generator, move_agent: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """States around the push-T goal and their distances in success units."""
    states = np.repeat(goal[None], n, axis=0)
    # Independent magnitudes, each skewed toward small: u * sqrt(u') of the range.
    dxy = _disc(rng, n, 100.0 * rng.uniform(0, 1, n))  # (n, 2) px
    dtheta = rng.uniform(-1, 1, n) * rng.uniform(0, 1, n) * math.pi / 2  # (n,) rad
    states[:, 2:4] += dxy
    states[:, 4] += dtheta
    dist = np.linalg.norm(dxy, axis=1) / PUSHT_POS_UNIT + np.abs(dtheta) / PUSHT_ANGLE_UNIT
    if move_agent:
        dagent = _disc(rng, n, 100.0 * rng.uniform(0, 1, n))  # (n, 2) px
        states[:, :2] += dagent
        dist += np.linalg.norm(dagent, axis=1) / PUSHT_POS_UNIT
    return states, dist


def _disc(rng: np.random.Generator, n: int, radius: NDArray[np.float64]) -> NDArray[np.float64]:
    """(n, 2) points uniform in discs of the given radii."""
    r = radius * np.sqrt(rng.uniform(0, 1, n))
    phi = rng.uniform(-math.pi, math.pi, n)
    return np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)


def _interpolated_states(
    env: Any, goal: NDArray[np.float64], n: int, rng: np.random.Generator, seed: int
) -> tuple[list[NDArray[np.float64]], NDArray[np.float64]]:
    """States between the goal and the env's start states; distance = the task metric."""
    states: list[NDArray[np.float64]] = []
    dists: list[float] = []
    tries = 0
    while len(states) < n and tries < 20 * n:
        tries += 1
        env.reset(seed=seed + 1 + tries)
        start = env.get_state()
        t = rng.uniform(0, 1) ** 1.5
        s = goal + t * (start - goal)
        s[len(s) - _fixed_tail(env) :] = goal[len(goal) - _fixed_tail(env) :]
        try:
            env.set_state(s)  # validates: refuses a position inside a wall
        except ValueError:
            continue
        states.append(s)
        dists.append(float(env.evaluate_state(s, goal)[env.metric_name]))
    return states, np.asarray(dists)


def _fixed_tail(env: Any) -> int:
    """Trailing state entries that describe the world, not the scene (maze walls)."""
    labels = tuple(getattr(env, "state_labels", ()))
    return 3 if labels[-3:] == ("layout", "wall_x", "door_y") else 0


def _render(env: Any, state: NDArray[np.float64]) -> NDArray[np.uint8]:
    if hasattr(env, "render_state"):
        img: NDArray[np.uint8] = env.render_state(state)
        return img
    env.set_state(state)
    frame: NDArray[np.uint8] = env.render()
    return frame


def proxy_frames(
    env_id: str,
    variant: str = "block",
    *,
    n: int = 300,
    seed: int = 0,
    image_size: int = 64,
    env_kwargs: dict[str, Any] | None = None,
) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.float64]]:
    """Render (goal (H, W, 3), states (n, H, W, 3), true distances (n,)) for the proxy."""
    import sims  # noqa: F401, PLC0415 (registers the envs)

    env: Any = gym.make(env_id, image_size=image_size, **(env_kwargs or {})).unwrapped
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    goal = np.asarray(env.goal_state, dtype=np.float64)
    if env_id == PUSHT_ID:
        if variant not in ("block", "agent"):
            raise ValueError(f"push-T variant must be 'block' or 'agent', got {variant!r}")
        states, dist = _pusht_states(goal, n, rng, move_agent=variant == "agent")
        frames = np.stack([_render(env, s) for s in states])
    else:
        slist, dist = _interpolated_states(env, goal, n, rng, seed)
        frames = np.stack([_render(env, s) for s in slist])
    goal_frame = _render(env, goal)
    env.close()
    return goal_frame, frames, dist


def latent_distances(
    encoder: Callable[[Tensor], Tensor],
    goal: NDArray[np.uint8],
    frames: NDArray[np.uint8],
    batch: int = 100,
) -> NDArray[np.float64]:
    """Mean squared latent distance of each frame to the goal frame."""
    with torch.no_grad():
        z_goal = encoder(torch.from_numpy(goal[None]))  # (1, N, D)
        out = []
        for i in range(0, len(frames), batch):
            z = encoder(torch.from_numpy(frames[i : i + batch]))  # (b, N, D)
            out.append(((z - z_goal) ** 2).mean(dim=(1, 2)))
    return torch.cat(out).double().numpy()


def score(
    latent: NDArray[np.float64], true: NDArray[np.float64], env_id: str, variant: str
) -> RankQuality:
    """The proxy's numbers from latent and true distances."""
    if env_id == PUSHT_ID:
        near, far, close, away = true < 2, true > 4, true < 4, true > 2
    else:
        lo, hi, mid = np.quantile(true, [1 / 3, 2 / 3, 1 / 2])
        near, far, close, away = true <= lo, true >= hi, true <= mid, true > mid
    return RankQuality(
        env_id=env_id,
        variant=variant,
        n=len(true),
        spearman=spearman(latent, true),
        auc=auc(latent[near], latent[far]),
        near_spearman=spearman(latent[close], true[close]),
        far_spearman=spearman(latent[away], true[away]),
        n_near=int(near.sum()),
        n_far=int(far.sum()),
    )


def rank_quality(
    encoder: Callable[[Tensor], Tensor],
    env_id: str,
    variant: str = "block",
    *,
    n: int = 300,
    seed: int = 0,
    image_size: int = 64,
    env_kwargs: dict[str, Any] | None = None,
) -> RankQuality:
    """Score ``encoder`` on the ranking proxy for ``env_id`` (see the module docstring).

    Args:
        encoder: uint8 (B, H, W, 3) -> tokens (B, N, D); raw pixels are scored by
            passing a pixel "encoder" (:class:`world_model.encoders.offline.PixelTokens`).
        env_id: A registered worldplan env id.
        variant: push-T only: ``"block"`` (A) or ``"agent"`` (B).
        n: Number of perturbed states.
        seed: Seed of the perturbations (and env resets).
        image_size: Rendered frame side in pixels.
        env_kwargs: Extra constructor arguments (e.g. ``{"layout": "tworoom"}``).
    """
    goal, frames, true = proxy_frames(
        env_id, variant, n=n, seed=seed, image_size=image_size, env_kwargs=env_kwargs
    )
    return score(latent_distances(encoder, goal, frames), true, env_id, variant)
