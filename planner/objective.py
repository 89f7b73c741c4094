"""The task objective: distance between imagined and goal latents (never an oracle signal)."""

from __future__ import annotations

import torch
from torch import Tensor

from planner.config import ObjectiveConfig
from world_model.types import Latent


def frame_weights(config: ObjectiveConfig, horizon: int, like: Tensor) -> Tensor:
    """Weights (H,) of the imagined frames, summing to 1."""
    if config.frames == "last":
        w = torch.zeros(horizon, dtype=like.dtype, device=like.device)
        w[-1] = 1.0
        return w
    exponents = torch.arange(horizon - 1, -1, -1, dtype=like.dtype, device=like.device)
    w = config.discount**exponents  # (H,)
    return w / w.sum()


def _distance(config: ObjectiveConfig, pred: Tensor, goal: Tensor) -> Tensor:
    diff = pred - goal
    per = diff.square() if config.distance == "mse" else diff.abs()
    return per.flatten(2).mean(-1)  # (B, H)


def latent_cost(config: ObjectiveConfig, pred: Latent, goal: Latent) -> Tensor:
    """Cost per sample (B,) of imagined latents (B, H, ...) against goal latents (B, 1, ...).

    The goal's last frame is the target; ``goal`` broadcasts over the batch when
    its batch is 1.
    """
    target = goal.frames(-1)
    w = frame_weights(config, pred.visual.shape[1], pred.visual)  # (H,)
    cost = _distance(config, pred.visual, target.visual) @ w  # (B,)
    if config.alpha > 0:
        cost = cost + config.alpha * (_distance(config, pred.proprio, target.proprio) @ w)
    return cost
