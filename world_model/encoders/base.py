"""What every frozen encoder shares: input checks, resizing, normalisation, freezing.

An encoder takes uint8 RGB frames ``(B, H, W, 3)`` of any size, centre-crops them to
a square, resizes them to its own ``image_size``, normalises them and returns patch
tokens ``(B, N, D)``. Encoders are frozen: no parameter needs a gradient, they stay in
eval mode and encode under ``torch.no_grad``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

#: Smallest frame side accepted (anything smaller carries no usable picture).
MIN_SIDE = 8


class EncoderInputError(ValueError):
    """Images given to an encoder have the wrong type, dtype, rank or channel count."""


def check_images(images: object) -> Tensor:
    """Return ``images`` as a uint8 tensor (B, H, W, 3), or raise a clear error.

    A NumPy array is accepted and converted (no copy where possible).
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, Tensor):
        raise EncoderInputError(
            f"images must be a uint8 tensor (B, H, W, 3), got {type(images).__name__}"
        )
    shape, dtype = tuple(images.shape), images.dtype
    if dtype != torch.uint8:
        raise EncoderInputError(
            f"images must be uint8 RGB (B, H, W, 3) with values 0..255, got dtype {dtype} "
            f"shape {shape}"
        )
    if images.ndim != 4:
        raise EncoderInputError(f"images must be (B, H, W, 3) uint8, got shape {shape}")
    if shape[-1] != 3:
        hint = " (channels-first? pass (B, H, W, 3))" if shape[1] == 3 else ""
        raise EncoderInputError(f"images must have 3 RGB channels last, got shape {shape}{hint}")
    if min(shape[1], shape[2]) < MIN_SIDE or shape[0] < 1:
        raise EncoderInputError(
            f"images must be at least {MIN_SIDE}x{MIN_SIDE} and B >= 1, got shape {shape}"
        )
    return images


def to_square_float(images: Tensor, size: int) -> Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, size, size) in [0, 1]: centre crop, area-aware resize."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, H, W)
    h, w = x.shape[-2:]
    side = min(h, w)
    if h != w:
        top, left = (h - side) // 2, (w - side) // 2
        x = x[:, :, top : top + side, left : left + side]  # (B, 3, S, S)
    if side != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    return x  # (B, 3, size, size)


class FrozenEncoder(nn.Module):
    """Base class of the registry's encoders (implements :class:`world_model.types.Encoder`).

    Subclasses set the protocol fields and implement :meth:`features`, which maps
    normalised float images (B, 3, S, S) to tokens (B, N, D).
    """

    encoder_id: str
    image_size: int
    num_patches: int
    embed_dim: int
    weights_sha256: str
    provenance: str
    #: Per-channel normalisation applied to [0, 1] pixels: (x - mean) / std.
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def freeze(self) -> None:
        """Switch to eval mode and stop every parameter from needing a gradient."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenEncoder:
        """Stay in eval mode: a frozen encoder has no training behaviour."""
        del mode
        return super().train(False)

    @property
    def device(self) -> torch.device:
        """Device of the encoder's parameters or buffers (CPU for a state-free one)."""
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    def preprocess(self, images: Tensor) -> Tensor:
        """uint8 (B, H, W, 3) -> normalised float (B, 3, S, S) on the encoder's device."""
        x = to_square_float(check_images(images).to(self.device), self.image_size)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std  # (B, 3, S, S)

    def features(self, x: Tensor) -> Tensor:
        """Normalised images (B, 3, S, S) -> tokens (B, N, D)."""
        raise NotImplementedError

    def forward(self, images: Tensor) -> Tensor:
        """Encode uint8 RGB images (B, H, W, 3) to float32 tokens (B, N, D)."""
        with torch.no_grad():
            tokens = self.features(self.preprocess(images))  # (B, N, D)
        return tokens.float()

    def __call__(self, images: Tensor) -> Tensor:
        """Encode uint8 RGB images (B, H, W, 3) to float32 tokens (B, N, D)."""
        out: Tensor = super().__call__(images)
        return out

    def describe(self) -> dict[str, Any]:
        """The protocol fields as a dict (for manifests, bundles and health output)."""
        return {
            "encoder_id": self.encoder_id,
            "image_size": self.image_size,
            "num_patches": self.num_patches,
            "embed_dim": self.embed_dim,
            "weights_sha256": self.weights_sha256,
            "provenance": self.provenance,
        }
