"""A small conv autoencoder trained on sim frames: the trained candidate of the comparison.

Used by ``worldplan encoder compare --autoencoder-seconds S`` to put a self-supervised
encoder next to the training-free ones on the ranking proxy. Frames come from the
scripted and random data-collection policies of all three envs; training is seeded
and runs for a fixed number of steps, so a run is repeatable on the same machine.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from einops import rearrange
from numpy.typing import NDArray
from torch import Tensor, nn
from tqdm import tqdm

from world_model.encoders.base import FrozenEncoder

log = logging.getLogger(__name__)

#: (env id, constructor kwargs) of the frame sources.
FRAME_SOURCES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("worldplan/PushT-v0", {}),
    ("worldplan/Maze-v0", {"layout": "umaze"}),
    ("worldplan/Maze-v0", {"layout": "tworoom"}),
    ("worldplan/Granular-v0", {}),
)


def collect_frames(per_source: int, image_size: int = 64, seed: int = 0) -> NDArray[np.uint8]:
    """(M, S, S, 3) frames: episodes of 40 steps, scripted and random policies alternating."""
    import sims  # noqa: F401, PLC0415 (registers the envs)
    from sims.policies import make_policy  # noqa: PLC0415

    out = []
    for env_id, kwargs in FRAME_SOURCES:
        env = gym.make(env_id, image_size=image_size, **kwargs)
        frames: list[NDArray[np.uint8]] = []
        episode = 0
        while len(frames) < per_source:
            policy = make_policy(env, "scripted" if episode % 2 == 0 else "random", seed=episode)
            obs, info = env.reset(seed=seed * 10_000 + episode)
            for _ in range(40):
                frames.append(obs["pixels"])
                obs, _, term, trunc, info = env.step(policy(obs, info))
                if term or trunc:
                    break
            episode += 1
        env.close()
        out.extend(frames[:per_source])
    return np.stack(out)


class ConvAutoencoder(nn.Module):
    """64 px frame -> (dim, 8, 8) token map -> 64 px reconstruction."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 32, 4, 2, 1), nn.GELU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.GELU(),
            nn.Conv2d(64, dim, 4, 2, 1),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.GELU(),
            nn.ConvTranspose2d(dim, 64, 4, 2, 1), nn.GELU(),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.GELU(),
            nn.ConvTranspose2d(32, 3, 4, 2, 1),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, 64, 64) -> reconstruction (B, 3, 64, 64)."""
        out: Tensor = self.decoder(self.encoder(x))
        return out


def train_autoencoder(
    frames: NDArray[np.uint8], steps: int, seed: int = 0, batch: int = 64, lr: float = 1e-3
) -> ConvAutoencoder:
    """Fit the autoencoder to ``frames`` (pixels in [-1, 1]) for ``steps`` Adam steps."""
    torch.manual_seed(seed)
    gen = np.random.default_rng(seed)
    model = ConvAutoencoder()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    data = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    t0 = time.perf_counter()
    for step in tqdm(range(steps), desc="autoencoder"):
        x = data[gen.integers(0, len(data), batch)]  # (b, 3, 64, 64)
        loss = F.mse_loss(model(x), x)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        if step % 200 == 0:
            log.info("step %d loss %.5f", step, loss.item())
    log.info("trained %d steps in %.0f s", steps, time.perf_counter() - t0)
    return model


class AutoencoderTokens(FrozenEncoder):
    """The trained autoencoder's 8 x 8 x 64 token map, frozen."""

    def __init__(self, model: ConvAutoencoder, provenance: str) -> None:
        super().__init__()
        self.net = model.encoder
        self.encoder_id = "wp-convae-64px-g8"
        self.image_size, self.num_patches, self.embed_dim = 64, 64, 64
        self.weights_sha256 = ""
        self.provenance = provenance
        self.freeze()

    def features(self, x: Tensor) -> Tensor:
        """(B, 3, 64, 64) -> (B, 64, 64)."""
        out: Tensor = rearrange(self.net(x), "b d h w -> b (h w) d")
        return out
