"""A tiny deterministic encoder and model for the world-model tests (no weights to download)."""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from world_model.heads import DecoderConfig, ProbeConfig
from world_model.model import ModelSpec, NormStats, WorldModel
from world_model.predictor import PredictorConfig

ENV_ID = "worldplan/PushT-v0"
IMAGE_SIZE = 32
FRAMESKIP = 2
ENV_ACTION_DIM = 2
PROPRIO_DIM = 2
A = FRAMESKIP * ENV_ACTION_DIM
STATE_LABELS = ("agent_x", "agent_y", "block_x")


class TinyEncoder(nn.Module):
    """Patchify 16 px images into 4x4 = 16 tokens of dim 8 with a fixed random projection."""

    encoder_id = "tiny_test_encoder"
    image_size = 16
    num_patches = 16
    embed_dim = 8
    provenance = "seeded random projection, tests only"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.proj = nn.Parameter(torch.randn(48, 8, generator=gen) / 7.0, requires_grad=False)
        digest = hashlib.sha256(self.proj.detach().numpy().tobytes()).hexdigest()
        self.weights_sha256 = digest

    def forward(self, images: Tensor) -> Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
        x = F.interpolate(x, size=(16, 16), mode="area")  # (B, 3, 16, 16)
        x = F.unfold(x, kernel_size=4, stride=4).transpose(1, 2)  # (B, 16, 48)
        return x @ self.proj  # (B, 16, 8)


def tiny_configs(
    history: int = 3, dropout: float = 0.0
) -> tuple[ModelSpec, PredictorConfig, ProbeConfig, DecoderConfig]:
    enc = TinyEncoder()
    spec = ModelSpec(
        env_id=ENV_ID,
        frameskip=FRAMESKIP,
        env_action_dim=ENV_ACTION_DIM,
        history=history,
        image_size=IMAGE_SIZE,
        state_labels=STATE_LABELS,
        encoder_id=enc.encoder_id,
        encoder_sha256=enc.weights_sha256,
        encoder_provenance=enc.provenance,
    )
    pred = PredictorConfig(
        num_patches=16,
        embed_dim=8,
        action_dim=FRAMESKIP * ENV_ACTION_DIM,
        proprio_dim=PROPRIO_DIM,
        action_emb_dim=4,
        proprio_emb_dim=4,
        history=history,
        depth=2,
        heads=2,
        width=16,
        mlp_dim=32,
        dropout=dropout,
        residual=False,
    )
    probe = ProbeConfig(
        16, 8, PROPRIO_DIM, len(STATE_LABELS), width=8, queries=2, heads=2, hidden=16
    )
    dec = DecoderConfig(16, 8, image_size=16, channels=16)
    return spec, pred, probe, dec


def tiny_model(seed: int = 0, history: int = 3, dropout: float = 0.0) -> WorldModel:
    """A tiny world model with non-trivial stats and the tiny encoder attached."""
    torch.manual_seed(seed)
    spec, pred, probe, dec = tiny_configs(history, dropout)
    gen = torch.Generator().manual_seed(seed + 1)
    a = pred.action_dim
    stats = NormStats(
        action_mean=torch.randn(a, generator=gen) * 0.1,
        action_std=torch.rand(a, generator=gen) + 0.5,
        proprio_mean=torch.randn(PROPRIO_DIM, generator=gen) * 10,
        proprio_std=torch.rand(PROPRIO_DIM, generator=gen) * 5 + 1,
        state_mean=torch.randn(len(STATE_LABELS), generator=gen) * 100,
        state_std=torch.rand(len(STATE_LABELS), generator=gen) * 50 + 1,
    )
    model = WorldModel(spec, pred, probe, dec, stats=stats, encoder=TinyEncoder())
    return model.eval()


def tiny_inputs(batch: int = 2, frames: int = 3, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Random uint8 frames (B, T, 32, 32, 3) and raw proprio (B, T, P)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, frames, IMAGE_SIZE, IMAGE_SIZE, 3), generator=gen)
    proprio = torch.randn(batch, frames, PROPRIO_DIM, generator=gen) * 20
    return images.to(torch.uint8), proprio
