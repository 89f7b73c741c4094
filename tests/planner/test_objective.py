"""The latent objective: MSE / L1 over patch tokens, last or all frames, proprio term."""

from __future__ import annotations

import pytest
import torch

from planner import ObjectiveConfig
from planner.objective import frame_weights, latent_cost
from world_model.types import Latent


def test_last_frame_mse_and_l1() -> None:
    pred = Latent(
        torch.tensor([0.0, 1.0, 3.0]).reshape(1, 3, 1, 1).expand(1, 3, 2, 3), torch.zeros(1, 3, 1)
    )
    goal = Latent(torch.full((1, 1, 2, 3), 1.0), torch.zeros(1, 1, 1))
    assert latent_cost(ObjectiveConfig(), pred, goal).item() == pytest.approx(4.0)
    assert latent_cost(ObjectiveConfig(distance="l1"), pred, goal).item() == pytest.approx(2.0)


def test_all_frames_weighted() -> None:
    pred = Latent(
        torch.tensor([0.0, 1.0, 3.0]).reshape(1, 3, 1, 1).expand(1, 3, 2, 3), torch.zeros(1, 3, 1)
    )
    goal = Latent(torch.full((1, 1, 2, 3), 1.0), torch.zeros(1, 1, 1))
    uniform = ObjectiveConfig(frames="all")
    assert latent_cost(uniform, pred, goal).item() == pytest.approx((1 + 0 + 4) / 3)
    w = frame_weights(ObjectiveConfig(frames="all", discount=0.5), 3, pred.visual)
    assert w.tolist() == pytest.approx([1 / 7, 2 / 7, 4 / 7])
    discounted = latent_cost(ObjectiveConfig(frames="all", discount=0.5), pred, goal).item()
    assert discounted == pytest.approx((1 * 1 + 0 * 2 + 4 * 4) / 7)


def test_proprio_term_and_goal_last_frame() -> None:
    pred = Latent(torch.zeros(2, 1, 4, 2), torch.tensor([[[1.0, 1.0]], [[3.0, 1.0]]]))
    goal = Latent(
        torch.cat([torch.full((1, 1, 4, 2), 5.0), torch.zeros(1, 1, 4, 2)], dim=1),
        torch.ones(1, 2, 2),
    )
    # Only the goal's last frame counts (visual zeros); proprio MSE (0, 2) times alpha.
    cost = latent_cost(ObjectiveConfig(alpha=0.5), pred, goal.frames(-1))
    assert cost.tolist() == pytest.approx([0.0, 1.0])
    assert latent_cost(ObjectiveConfig(), pred, goal).tolist() == pytest.approx([0.0, 0.0])


def test_objective_config_validates() -> None:
    with pytest.raises(ValueError, match="distance must be 'mse' or 'l1'"):
        ObjectiveConfig(distance="l2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        ObjectiveConfig(alpha=-1.0)
