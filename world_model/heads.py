"""Heads read out of the latent: a state probe and a preview decoder.

* :class:`StateProbe` maps patch features (and proprio) to the physical state
  (agent position, block pose, ...), used by guardrails and metrics. Learned
  queries attention-pool the token map, so the probe keeps track of *where*
  things are (each token carries a learned position embedding).
* :class:`Decoder` turns patch features back into small RGB images for plan
  previews. It is trained on detached latents only and never shapes the predictor
  (DINO-WM: a decoder loss on the predictor lowers push-T success .92 -> .80).

Shapes: B batch, T frames, N patch tokens (a square g x g grid for the decoder),
D feature dim, P proprio dim, S state dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn


@dataclass(frozen=True)
class ProbeConfig:
    """Shape and size of a :class:`StateProbe`."""

    #: Patch tokens per frame N.
    num_patches: int
    #: Encoder feature dim D.
    embed_dim: int
    #: Proprio dim P (0: none).
    proprio_dim: int
    #: State dim S the probe outputs.
    state_dim: int
    #: Width tokens are projected to before pooling.
    width: int = 64
    #: Learned pooling queries.
    queries: int = 4
    #: Attention heads in the pooling; must divide ``width``.
    heads: int = 4
    #: Hidden width of the output MLP.
    hidden: int = 128
    #: Whether the (normalised) proprio vector is fed to the output MLP too.
    use_proprio: bool = True

    def __post_init__(self) -> None:
        for name in ("num_patches", "embed_dim", "state_dim", "width", "queries", "heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ProbeConfig.{name} must be a positive int, got {value!r}")
        if not isinstance(self.proprio_dim, int) or self.proprio_dim < 0:
            raise ValueError(f"ProbeConfig.proprio_dim must be an int >= 0, got {self.proprio_dim}")
        if not isinstance(self.hidden, int) or self.hidden < 1:
            raise ValueError(f"ProbeConfig.hidden must be a positive int, got {self.hidden!r}")
        if self.width % self.heads != 0:
            raise ValueError(f"ProbeConfig.heads ({self.heads}) must divide width ({self.width})")


class StateProbe(nn.Module):
    """Latent -> normalised physical state, by attention pooling over patch tokens."""

    def __init__(self, config: ProbeConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.proj = nn.Linear(c.embed_dim, c.width)
        self.pos_emb = nn.Parameter(torch.zeros(1, c.num_patches, c.width))
        nn.init.trunc_normal_(self.pos_emb, std=0.02)
        self.norm = nn.LayerNorm(c.width)
        self.query = nn.Parameter(torch.randn(1, c.queries, c.width) * 0.02)
        self.pool = nn.MultiheadAttention(c.width, c.heads, batch_first=True)
        extra = c.proprio_dim if c.use_proprio else 0
        self.mlp = nn.Sequential(
            nn.Linear(c.queries * c.width + extra, c.hidden),
            nn.GELU(),
            nn.Linear(c.hidden, c.state_dim),
        )

    def forward(self, visual: Tensor, proprio: Tensor) -> Tensor:
        """Probe every frame.

        Args:
            visual: (B, T, N, D) patch features.
            proprio: (B, T, P) normalised proprio (ignored unless ``use_proprio``).

        Returns:
            (B, T, S) state, normalised with the bundle's state statistics.
        """
        c = self.config
        if visual.ndim != 4 or visual.shape[2:] != (c.num_patches, c.embed_dim):
            raise ValueError(
                f"visual must be (B, T, {c.num_patches}, {c.embed_dim}), got {tuple(visual.shape)}"
            )
        b, t = visual.shape[:2]
        tokens = self.norm(self.proj(visual.flatten(0, 1)) + self.pos_emb)  # (B*T, N, w)
        q = self.query.expand(b * t, -1, -1)  # (B*T, Q, w)
        pooled, _ = self.pool(q, tokens, tokens, need_weights=False)  # (B*T, Q, w)
        feats = pooled.reshape(b, t, -1)  # (B, T, Q*w)
        if c.use_proprio and c.proprio_dim:
            if tuple(proprio.shape) != (b, t, c.proprio_dim):
                raise ValueError(
                    f"proprio must be ({b}, {t}, {c.proprio_dim}), got {tuple(proprio.shape)}"
                )
            feats = torch.cat([feats, proprio], dim=-1)  # (B, T, Q*w + P)
        state: Tensor = self.mlp(feats)  # (B, T, S)
        return state


@dataclass(frozen=True)
class DecoderConfig:
    """Shape and size of a :class:`Decoder`."""

    #: Patch tokens per frame N; must be a square number (a g x g grid).
    num_patches: int
    #: Encoder feature dim D.
    embed_dim: int
    #: Side (px) of the decoded preview images.
    image_size: int = 64
    #: Channels of the first feature map; halved at each upsampling (at least 16).
    channels: int = 64

    def __post_init__(self) -> None:
        for name in ("num_patches", "embed_dim", "image_size", "channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DecoderConfig.{name} must be a positive int, got {value!r}")
        if math.isqrt(self.num_patches) ** 2 != self.num_patches:
            raise ValueError(
                f"DecoderConfig.num_patches must be a square grid (e.g. 64 = 8x8, 196 = 14x14), "
                f"got {self.num_patches}"
            )
        if self.image_size < self.grid:
            raise ValueError(
                f"DecoderConfig.image_size ({self.image_size}) must be >= the token grid "
                f"({self.grid})"
            )

    @property
    def grid(self) -> int:
        """Side g of the token grid."""
        return math.isqrt(self.num_patches)

    @property
    def upsamplings(self) -> int:
        """Number of x2 transposed-conv stages: the least that reaches ``image_size``."""
        return max(0, math.ceil(math.log2(self.image_size / self.grid)))


class Decoder(nn.Module):
    """Patch features -> RGB preview images, by transposed convolutions."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.proj = nn.Linear(c.embed_dim, c.channels)
        layers: list[nn.Module] = []
        ch = c.channels
        for _ in range(c.upsamplings):
            out = max(16, ch // 2)
            layers += [nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1), nn.GELU()]
            ch = out
        layers.append(nn.Conv2d(ch, 3, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, visual: Tensor) -> Tensor:
        """Decode to float images in [0, 1].

        Args:
            visual: (B, T, N, D) patch features.

        Returns:
            (B, T, 3, image_size, image_size) float images in [0, 1].
        """
        c = self.config
        if visual.ndim != 4 or visual.shape[2:] != (c.num_patches, c.embed_dim):
            raise ValueError(
                f"visual must be (B, T, {c.num_patches}, {c.embed_dim}), got {tuple(visual.shape)}"
            )
        b, t = visual.shape[:2]
        x = self.proj(visual.flatten(0, 1))  # (B*T, N, C)
        x = x.transpose(1, 2).reshape(b * t, c.channels, c.grid, c.grid)  # (B*T, C, g, g)
        x = self.net(x)  # (B*T, 3, g * 2**k, g * 2**k)
        if x.shape[-1] != c.image_size:
            x = F.interpolate(x, size=(c.image_size, c.image_size), mode="bilinear")
        x = torch.sigmoid(x)  # (B*T, 3, S, S)
        return x.view(b, t, 3, c.image_size, c.image_size)

    def to_uint8(self, visual: Tensor) -> Tensor:
        """Decode to uint8 RGB images (B, T, image_size, image_size, 3)."""
        x = self.forward(visual)  # (B, T, 3, S, S)
        return (x * 255.0).round().to(torch.uint8).permute(0, 1, 3, 4, 2).contiguous()

    @staticmethod
    def target(images: Tensor, size: int) -> Tensor:
        """Training target: uint8 (B, T, H, W, 3) -> float (B, T, 3, size, size) in [0, 1]."""
        b, t = images.shape[:2]
        x = images.flatten(0, 1).permute(0, 3, 1, 2).float() / 255.0  # (B*T, 3, H, W)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="area")
        return x.view(b, t, 3, size, size)
