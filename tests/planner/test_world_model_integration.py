"""The planners on the real (tiny, untrained) world model: gradients flow, batching holds."""

from __future__ import annotations

import pytest
import torch

from planner import (
    Budget,
    CEMConfig,
    GradientConfig,
    MPPIConfig,
    Plan,
    PlanRequest,
    guardrails_for,
    plan_batch,
)
from planner.config import OptimiserConfig
from world_model.model import ModelSpec, NormStats, WorldModel, default_configs
from world_model.types import Latent

LABELS = ("agent_x", "agent_y", "block_x", "block_y")


def _model() -> WorldModel:
    torch.manual_seed(0)
    spec = ModelSpec(
        env_id="worldplan/PushT-v0",
        frameskip=2,
        env_action_dim=2,
        history=2,
        image_size=32,
        state_labels=LABELS,
        encoder_id="none",
    )
    pred, probe, dec = default_configs(spec, 16, 8, 2, depth=1, heads=2, width=16, mlp_dim=32)
    stats = NormStats(
        action_mean=torch.zeros(4),
        action_std=torch.full((4,), 0.2),
        proprio_mean=torch.zeros(2),
        proprio_std=torch.ones(2),
        state_mean=torch.full((4,), 256.0),  # probed states well inside the workspace
        state_std=torch.full((4,), 5.0),
    )
    model = WorldModel(spec, pred, probe, dec, stats=stats).eval()
    with torch.no_grad():  # untrained layers may start at zero: make actions matter
        for p in model.predictor.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


def _latent(seed: int, frames: int) -> Latent:
    gen = torch.Generator().manual_seed(seed)
    return Latent(
        torch.randn(1, frames, 16, 8, generator=gen), torch.randn(1, frames, 2, generator=gen)
    )


CONFIGS: list[OptimiserConfig] = [
    CEMConfig(horizon=3, samples=32, elites=4),
    MPPIConfig(horizon=3, samples=32, elites=4),
    GradientConfig(horizon=3, restarts=4),
]


@pytest.mark.parametrize("config", CONFIGS, ids=["cem", "mppi", "gradient"])
def test_plans_on_the_world_model(config: OptimiserConfig) -> None:
    model = _model()
    rails = guardrails_for("worldplan/PushT-v0")
    requests = [
        PlanRequest(_latent(i, 2), _latent(10 + i, 1), rails, Budget(max_iterations=6), seed=i)
        for i in range(3)
    ]
    batched = plan_batch(model, requests, config)
    for req, b in zip(requests, batched, strict=True):
        assert isinstance(b, Plan)
        assert b.actions.shape == (3, 4)
        assert b.cost < b.trace[0]  # it improved on the first iteration's best
        (alone,) = plan_batch(model, [req], config)
        assert isinstance(alone, Plan)
        # A transformer's float32 sums may differ in the last bits between batch sizes.
        assert torch.allclose(alone.actions, b.actions, atol=1e-4)
    assert all(p.grad is None for p in model.parameters())
