"""An analytic world model with a known optimum, for tests and benchmarks.

A point mass whose position moves by ``scale`` env units per unit of env action,
``frameskip`` env actions per planning step. Its latent is the position, scaled to
about [-1, 1], tiled onto every patch token, so the latent MSE to a goal latent is
the squared position error (scaled) and the optimum is any plan that ends on the
goal. Its probe returns the exact position, labelled ``agent_x, agent_y``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from world_model.types import Latent


class PointMassModel:
    """A differentiable linear world model implementing :class:`world_model.types.LatentModel`.

    Defaults mimic push-T's units: positions in px in a 512-px workspace, an env
    action is a displacement in units of 100 px, 5 env actions per planning step.
    """

    state_labels: tuple[str, ...] = ("agent_x", "agent_y")

    def __init__(
        self,
        *,
        env_id: str = "worldplan/PushT-v0",
        frameskip: int = 5,
        scale: float = 100.0,
        centre: float = 256.0,
        extent: float = 256.0,
        tokens: int = 4,
        action_std: float = 0.2,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.env_id = env_id
        self.frameskip = frameskip
        self.env_action_dim = 2
        self.history = 1
        self.scale = scale
        self.centre = centre
        self.extent = extent
        self.tokens = tokens
        self._std = torch.full((2 * frameskip,), action_std, device=device, dtype=dtype)

    @property
    def action_dim(self) -> int:
        """Planning-action dim: ``env_action_dim * frameskip``."""
        return self.env_action_dim * self.frameskip

    @property
    def action_mean(self) -> Tensor:
        """(A,) zeros: the data's actions are centred."""
        return torch.zeros_like(self._std)

    @property
    def action_std(self) -> Tensor:
        """(A,) the data's action std."""
        return self._std

    def encode(self, position: Tensor) -> Latent:
        """Latent (B, T, N, 2) of positions (B, T, 2) in env units."""
        x = (position - self.centre) / self.extent  # (B, T, 2)
        visual = x[:, :, None, :].expand(-1, -1, self.tokens, -1)  # (B, T, N, 2)
        return Latent(visual, x)

    def rollout(self, z0: Latent, actions: Tensor) -> Latent:
        """Positions after each planning step: ``p_h = p_0 + scale * sum of env actions``."""
        b, h, _ = actions.shape
        moves = actions.reshape(b, h, self.frameskip, 2).sum(2)  # (B, H, 2)
        x0 = z0.proprio[:, -1:]  # (B, 1, 2)
        x = x0 + torch.cumsum(moves, dim=1) * (self.scale / self.extent)  # (B, H, 2)
        visual = x[:, :, None, :].expand(-1, -1, self.tokens, -1)  # (B, H, N, 2)
        return Latent(visual, x)

    def probe(self, z: Latent) -> Tensor:
        """Positions (B, T, 2) in env units."""
        return z.visual.mean(dim=2) * self.extent + self.centre  # (B, T, 2)
