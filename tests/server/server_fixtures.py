"""A tiny in-memory model registry and request helpers for the server tests."""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1] / "world_model"))
from tiny_model import IMAGE_SIZE, PROPRIO_DIM, STATE_LABELS, tiny_model

from server.registry import LoadedModel, ModelRegistry
from world_model.model import NormStats

KEY = "test-key-123"
MODEL = "tiny-pusht"


def make_registry() -> ModelRegistry:
    """The tiny push-T-shaped model, with stats that put probed states mid-workspace."""
    model = tiny_model(seed=0)
    a = model.action_dim
    model.set_stats(
        NormStats(
            action_mean=torch.zeros(a),
            action_std=torch.full((a,), 0.3),
            proprio_mean=torch.full((PROPRIO_DIM,), 256.0),
            proprio_std=torch.full((PROPRIO_DIM,), 50.0),
            state_mean=torch.full((len(STATE_LABELS),), 256.0),
            state_std=torch.full((len(STATE_LABELS),), 1.0),
        )
    )
    return ModelRegistry({MODEL: LoadedModel(MODEL, Path(), model, {"val_loss": 0.1})})


def png_b64(seed: int, size: int = IMAGE_SIZE) -> str:
    arr = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def plan_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "model": MODEL,
        "observation": png_b64(1),
        "goal": png_b64(2),
        "planner": "cem",
        "horizon": 3,
        "budget": {"iterations": 3},
        "seed": 0,
    }
    body.update(overrides)
    return body
