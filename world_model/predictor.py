"""The action-conditioned predictor: a ViT with block-causal attention over frames.

In the style of DINO-WM (``models/vit.py``): every patch token of frame ``t`` is the
patch feature concatenated with an embedding of the action taken after frame ``t``
and an embedding of the proprio vector of frame ``t``, both tiled onto every patch.
Attention is full within a frame and causal across frames, so the output at frame
``t`` (which predicts frame ``t + 1``) never sees frames after ``t``.

Sized for a CPU: the concatenated token (``D + action_emb_dim + proprio_emb_dim``
wide, 404 for DINOv2 ViT-S) is projected to a smaller ``width`` inside the
predictor and projected back to ``D`` at the output. DINO-WM runs its 6-deep,
16-head transformer at the full 404 width with a 2048 MLP; here the default is 4
blocks of width 128, 4 heads and a 256 MLP. ``merge=2`` further groups 2 x 2
neighbouring patches into one predictor token (4x fewer tokens, 16x less attention);
:func:`world_model.model.default_configs` turns it on for grids of 8 x 8 and more,
so that 256 candidate plans roll out at a few hundred steps/s on two cores
(``worldplan bench model``). With ``residual=True`` (default) the predictor outputs
the change of the features, so an untrained predictor starts from the
copy-last-frame baseline.

Shapes: B batch, T frames (``T <= history``), N patch tokens, D feature dim,
A planning-action dim, P proprio dim, W internal width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from einops import rearrange
from torch import Tensor, nn


@dataclass(frozen=True)
class PredictorConfig:
    """Shape and size of a :class:`Predictor`."""

    #: Patch tokens per frame N.
    num_patches: int
    #: Encoder feature dim D.
    embed_dim: int
    #: Planning-action dim A (env action dim x frameskip).
    action_dim: int
    #: Proprio dim P (0 for an env without proprio).
    proprio_dim: int
    #: Width of the action embedding tiled onto every patch (DINO-WM: 10).
    action_emb_dim: int = 10
    #: Width of the proprio embedding tiled onto every patch (DINO-WM: 10).
    proprio_emb_dim: int = 10
    #: Frames of context T the position embeddings cover (DINO-WM: 3).
    history: int = 3
    #: Transformer blocks (DINO-WM: 6).
    depth: int = 4
    #: Attention heads; must divide ``width``.
    heads: int = 4
    #: Internal token width W; 0 keeps the concatenated width ``D + emb dims`` (no projection).
    width: int = 128
    #: Hidden width of each block's MLP (2 x width: the MLP dominates the cost on a CPU).
    mlp_dim: int = 256
    #: Dropout on attention outputs and MLPs during training (DINO-WM: 0.1).
    dropout: float = 0.1
    #: Predict the change of features (and proprio) rather than the features themselves.
    residual: bool = True
    #: Merge ``merge x merge`` neighbouring patches of the (square) token grid into one
    #: predictor token (1: one token per patch, as DINO-WM). 2 cuts the tokens 4x.
    merge: int = 1

    def __post_init__(self) -> None:
        positive = {
            "num_patches": self.num_patches,
            "embed_dim": self.embed_dim,
            "action_dim": self.action_dim,
            "history": self.history,
            "depth": self.depth,
            "heads": self.heads,
            "mlp_dim": self.mlp_dim,
            "action_emb_dim": self.action_emb_dim,
            "merge": self.merge,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"PredictorConfig.{name} must be a positive int, got {value!r}")
        for name, value in (
            ("proprio_dim", self.proprio_dim),
            ("proprio_emb_dim", self.proprio_emb_dim),
            ("width", self.width),
        ):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"PredictorConfig.{name} must be an int >= 0, got {value!r}")
        if self.proprio_dim > 0 and self.proprio_emb_dim == 0:
            raise ValueError("PredictorConfig.proprio_emb_dim must be >= 1 when proprio_dim > 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"PredictorConfig.dropout must be in [0, 1), got {self.dropout}")
        grid = math.isqrt(self.num_patches)
        if self.merge > 1 and (grid * grid != self.num_patches or grid % self.merge):
            raise ValueError(
                f"PredictorConfig.merge={self.merge} needs a square token grid whose side is a "
                f"multiple of {self.merge}, got {self.num_patches} tokens"
            )
        if self.model_width % self.heads != 0:
            raise ValueError(
                f"PredictorConfig.heads ({self.heads}) must divide the token width "
                f"({self.model_width}); choose e.g. heads={_divisor_near(self.model_width, 4)}"
            )

    @property
    def tokens_per_frame(self) -> int:
        """Predictor tokens per frame: ``N / merge**2``."""
        return self.num_patches // (self.merge * self.merge)

    @property
    def token_dim(self) -> int:
        """Width of a concatenated input token: ``merge**2 D + action_emb + proprio_emb``."""
        proprio = self.proprio_emb_dim if self.proprio_dim > 0 else 0
        return self.merge * self.merge * self.embed_dim + self.action_emb_dim + proprio

    @property
    def model_width(self) -> int:
        """Width W the transformer runs at."""
        return self.width if self.width > 0 else self.token_dim


def _divisor_near(n: int, target: int) -> int:
    """The divisor of ``n`` closest to ``target`` (for error messages)."""
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: abs(d - target))


def block_causal_mask(frames: int, patches: int, device: torch.device | None = None) -> Tensor:
    """Boolean attention mask (True = may attend) for ``frames`` x ``patches`` tokens.

    Tokens are ordered frame-major; token ``i`` of frame ``f(i)`` attends to token
    ``j`` iff ``f(j) <= f(i)``: full attention within a frame, causal across frames.

    Returns:
        (frames * patches, frames * patches) bool tensor.
    """
    frame = torch.arange(frames, device=device).repeat_interleave(patches)  # (T*N,)
    return frame[None, :] <= frame[:, None]  # (T*N, T*N)


class _Attention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention``."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.dropout = dropout

    def forward(self, x: Tensor, mask: Tensor | None, last: int = 0) -> Tensor:
        """Attend over ``x`` (B, L, W); with ``last > 0`` only the last ``last`` tokens query.

        ``mask`` is (L, L), or (last, L) when ``last > 0`` (None: attend to everything).
        """
        b, L, w = x.shape  # (B, L, W)  # noqa: N806
        h = self.heads
        if last:
            wq, wkv = self.qkv.weight[:w], self.qkv.weight[w:]
            bq, bkv = self.qkv.bias[:w], self.qkv.bias[w:]
            q = F.linear(x[:, L - last :], wq, bq).view(b, last, h, w // h).transpose(1, 2)
            kv = F.linear(x, wkv, bkv).view(b, L, 2, h, w // h)  # (B, L, 2, h, W/h)
            k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, L, W/h)
        else:
            qkv = self.qkv(x).view(b, L, 3, h, w // h)  # (B, L, 3, h, W/h)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, L, W/h)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B,h,Lq,W/h)
        out: Tensor = self.out(y.transpose(1, 2).reshape(b, q.shape[2], w))  # (B, Lq, W)
        return out


class _Block(nn.Module):
    """Pre-LN transformer block."""

    def __init__(self, width: int, heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = _Attention(width, heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, width),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor, mask: Tensor | None, last: int = 0) -> Tensor:
        """(B, L, W) -> (B, L, W), or (B, last, W) for the last ``last`` tokens only."""
        y = self.attn(self.norm1(x), mask, last)  # (B, Lq, W)
        x = (x[:, x.shape[1] - last :] if last else x) + y  # (B, Lq, W)
        out: Tensor = x + self.mlp(self.norm2(x))  # (B, Lq, W)
        return out


class Predictor(nn.Module):
    """Predicts next-frame patch features and proprio from a window of frames and actions."""

    def __init__(self, config: PredictorConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        w = c.model_width
        self.action_emb = nn.Linear(c.action_dim, c.action_emb_dim)
        self.proprio_emb = nn.Linear(c.proprio_dim, c.proprio_emb_dim) if c.proprio_dim else None
        self.proj_in: nn.Module = nn.Linear(c.token_dim, w) if c.width else nn.Identity()
        self.pos_emb = nn.Parameter(torch.zeros(1, c.history * c.tokens_per_frame, w))
        nn.init.trunc_normal_(self.pos_emb, std=0.02)
        self.blocks = nn.ModuleList(
            _Block(w, c.heads, c.mlp_dim, c.dropout) for _ in range(c.depth)
        )
        self.norm = nn.LayerNorm(w)
        self.visual_out = nn.Linear(w, c.merge * c.merge * c.embed_dim)
        self.proprio_out = nn.Linear(w, c.proprio_dim) if c.proprio_dim else None
        if c.residual:  # start at the copy-last-frame prediction
            nn.init.zeros_(self.visual_out.weight)
            nn.init.zeros_(self.visual_out.bias)
            if self.proprio_out is not None:
                nn.init.zeros_(self.proprio_out.weight)
                nn.init.zeros_(self.proprio_out.bias)
        self._masks: dict[tuple[int, str], Tensor] = {}

    def mask(self, frames: int, device: torch.device) -> Tensor:
        """The block-causal mask for ``frames`` frames, built once per (T, device)."""
        key = (frames, str(device))
        if key not in self._masks:
            self._masks[key] = block_causal_mask(frames, self.config.tokens_per_frame, device)
        return self._masks[key]

    def forward(
        self, visual: Tensor, proprio: Tensor, actions: Tensor, *, last_only: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Predict frame ``t + 1`` from frames ``<= t`` for every ``t`` of the window.

        Args:
            visual: (B, T, N, D) patch features, ``T <= history``.
            proprio: (B, T, P) normalised proprio.
            actions: (B, T, A) normalised planning actions; ``actions[:, t]`` follows frame t.
            last_only: Predict for the last frame only (T' = 1): the rollout's case. The last
                block then computes only the last frame's tokens, which attend to all frames.

        Returns:
            ``(visual_next (B, T', N, D), proprio_next (B, T', P))``; entry t predicts frame
            t+1 (T' = T, or 1 with ``last_only``).
        """
        self._check_inputs(visual, proprio, actions)
        t, n = visual.shape[1], self.config.tokens_per_frame
        x = self._embed(visual, proprio, actions)  # (B, T*n, W)
        mask = self.mask(t, x.device)  # (T*n, T*n)
        final = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            # (B, T*n, W); with last_only the final block keeps the last frame's n tokens,
            # which may attend to every frame (no mask).
            x = block(x, None, n) if last_only and i == final else block(x, mask)
        if last_only:
            visual, proprio = visual[:, -1:], proprio[:, -1:]
        return self._readout(x, visual, proprio)

    def _embed(self, visual: Tensor, proprio: Tensor, actions: Tensor) -> Tensor:
        """Input tokens (B, T*n, W): merged patches ++ tiled embeddings, projected, + positions."""
        b, t = visual.shape[:2]
        n = self.config.tokens_per_frame  # n = N / m^2 predictor tokens per frame
        tokens = self._merge(visual, math.isqrt(n))  # (B, T, n, m*m*D)
        parts = [tokens, self.action_emb(actions)[:, :, None].expand(b, t, n, -1)]  # (B,T,n,*)
        if self.proprio_emb is not None:
            parts.append(self.proprio_emb(proprio)[:, :, None].expand(b, t, n, -1))
        x = self.proj_in(torch.cat(parts, dim=-1).flatten(1, 2))  # (B, T*n, W)
        out: Tensor = x + self.pos_emb[:, : t * n]  # (B, T*n, W)
        return out

    def _readout(self, x: Tensor, visual: Tensor, proprio: Tensor) -> tuple[Tensor, Tensor]:
        """Output tokens (B, T'*n, W) -> next visual (B, T', N, D) and proprio (B, T', P)."""
        b, t = visual.shape[:2]
        m, n = self.config.merge, self.config.tokens_per_frame
        x = self.norm(x).view(b, t, n, -1)  # (B, T', n, W)
        visual_next = self.visual_out(x)  # (B, T', n, m*m*D)
        if m > 1:
            side = math.isqrt(n)
            visual_next = rearrange(
                visual_next, "b t (h w) (p q d) -> b t (h p w q) d", h=side, p=m, q=m
            )  # (B, T', N, D)
        if self.proprio_out is not None:
            proprio_next = self.proprio_out(x.mean(dim=2))  # (B, T', P)
        else:
            proprio_next = proprio.new_zeros(proprio.shape)  # (B, T', 0)
        if self.config.residual:
            visual_next = visual_next + visual
            proprio_next = proprio_next + proprio
        return visual_next, proprio_next

    def _merge(self, visual: Tensor, side: int) -> Tensor:
        """(B, T, N, D) -> (B, T, N / m^2, m^2 D): group m x m neighbouring patches."""
        m = self.config.merge
        if m == 1:
            return visual
        return rearrange(visual, "b t (h p w q) d -> b t (h w) (p q d)", h=side, p=m, q=m)

    def _check_inputs(self, visual: Tensor, proprio: Tensor, actions: Tensor) -> None:
        c = self.config
        if visual.ndim != 4 or visual.shape[2:] != (c.num_patches, c.embed_dim):
            raise ValueError(
                f"visual must be (B, T, {c.num_patches}, {c.embed_dim}), got {tuple(visual.shape)}"
            )
        b, t = visual.shape[:2]
        if not 1 <= t <= c.history:
            raise ValueError(f"window must have 1..{c.history} frames (history), got {t}")
        if tuple(proprio.shape) != (b, t, c.proprio_dim):
            raise ValueError(
                f"proprio must be ({b}, {t}, {c.proprio_dim}), got {tuple(proprio.shape)}"
            )
        if tuple(actions.shape) != (b, t, c.action_dim):
            raise ValueError(
                f"actions must be ({b}, {t}, {c.action_dim}), got {tuple(actions.shape)}"
            )
