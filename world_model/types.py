"""The small interfaces shared by the world model and the planner.

The planner sees a world model only through :class:`LatentModel`; latents travel
as :class:`Latent`. Shapes: B batch, T frames, N patch tokens, D feature dim,
P proprio dim, H planning horizon, A planning-action dim (env action dim x
frameskip), S probed state dim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor


@dataclass(frozen=True)
class Latent:
    """A latent state: visual patch features and the proprio vector, per frame."""

    visual: Tensor  # (B, T, N, D)
    proprio: Tensor  # (B, T, P), normalised with the bundle's statistics

    def __post_init__(self) -> None:
        if self.visual.ndim != 4 or self.proprio.ndim != 3:
            raise ValueError(
                "Latent needs visual (B, T, N, D) and proprio (B, T, P), got "
                f"{tuple(self.visual.shape)} and {tuple(self.proprio.shape)}"
            )
        if self.visual.shape[:2] != self.proprio.shape[:2]:
            raise ValueError(
                f"visual and proprio disagree on (B, T): {tuple(self.visual.shape[:2])} "
                f"vs {tuple(self.proprio.shape[:2])}"
            )

    def frames(self, index: slice | int) -> Latent:
        """Select frames along T (an int keeps the T axis with length 1)."""
        sl = slice(index, index + 1 if index != -1 else None) if isinstance(index, int) else index
        return Latent(self.visual[:, sl], self.proprio[:, sl])

    def expand(self, batch: int) -> Latent:
        """Repeat a batch-1 latent ``batch`` times (a view, no copy)."""
        if self.visual.shape[0] != 1:
            raise ValueError(f"expand needs batch 1, got {self.visual.shape[0]}")
        return Latent(self.visual.expand(batch, -1, -1, -1), self.proprio.expand(batch, -1, -1))


class LatentModel(Protocol):
    """What a planner needs from a world model.

    Actions are in env units, one row per planning step: an (A,) row is the
    ``frameskip`` env actions executed in a row, concatenated.
    """

    env_id: str
    frameskip: int
    env_action_dim: int
    history: int
    #: Names of the entries of :meth:`probe`'s output (a subset of the env's state labels).
    state_labels: tuple[str, ...]

    @property
    def action_dim(self) -> int:
        """Planning-action dim: ``env_action_dim * frameskip``."""
        ...

    @property
    def action_mean(self) -> Tensor:
        """(A,) mean of planning actions in the training data, env units."""
        ...

    @property
    def action_std(self) -> Tensor:
        """(A,) std of planning actions in the training data, env units."""
        ...

    def rollout(self, z0: Latent, actions: Tensor) -> Latent:
        """Imagine H steps: ``z0`` (B, T0, ...) and actions (B, H, A) -> latents (B, H, ...)."""
        ...

    def probe(self, z: Latent) -> Tensor:
        """Physical state estimate (B, T, S) of latents (B, T, ...), in env units."""
        ...


class Encoder(Protocol):
    """A frozen image encoder: uint8 RGB images in, patch tokens out.

    Preprocessing (resize, normalisation) belongs to the encoder, so callers pass
    raw frames of any size.
    """

    #: Registry id, e.g. ``"dinov2_vits14"``; the offline default never claims to be DINOv2.
    encoder_id: str
    #: Side length (px) the encoder resizes its input to.
    image_size: int
    #: Number of patch tokens N.
    num_patches: int
    #: Feature dim D.
    embed_dim: int
    #: sha256 of the weights file the encoder was loaded from ("" for a weight-free encoder).
    weights_sha256: str
    #: One line saying how the weights were made or where they came from.
    provenance: str

    def __call__(self, images: Tensor) -> Tensor:
        """Encode uint8 images (B, H, W, 3), RGB, to float features (B, N, D)."""
        ...
