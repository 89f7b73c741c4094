"""Encoders this project can make on its own machine, without downloaded weights.

* :class:`PixelTokens`: raw pixels cut into a ``grid x grid`` token map (the baseline).
* :class:`PyramidTokens`: a fixed multi-scale Gaussian pyramid of the frame, each level
  blurred then area-downsampled and folded into the same token grid. Training-free; the
  blurred levels make latent distance keep growing as an object moves away, where raw
  pixels saturate once the object no longer overlaps its goal.
* :class:`RandomConvTokens`: a frozen randomly initialised conv net (a control).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from einops import rearrange
from torch import Tensor, nn

from world_model.encoders.base import FrozenEncoder


def gaussian_kernel(sigma: float) -> Tensor:
    """Normalised 1-D Gaussian (2 ceil(3 sigma) + 1 taps)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, C, H, W), replicate padding; sigma 0 is the identity."""
    if sigma <= 0:
        return x
    c = x.shape[1]
    k = gaussian_kernel(sigma).to(x)
    r = (len(k) - 1) // 2
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # along W
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # along H


def fold_tokens(x: Tensor, grid: int) -> Tensor:
    """(B, C, g k, g k) -> (B, g g, C k k): each token holds its k x k cell."""
    return rearrange(x, "b c (gh kh) (gw kw) -> b (gh gw) (c kh kw)", gh=grid, gw=grid)


class PixelTokens(FrozenEncoder):
    """Raw pixels (normalised to [-1, 1]) as a ``grid x grid`` token map, D = 3 (S / grid)^2."""

    def __init__(self, image_size: int = 64, grid: int = 8) -> None:
        super().__init__()
        if image_size % grid:
            raise ValueError(f"image_size {image_size} must be a multiple of grid {grid}")
        self.encoder_id = f"wp-pixels-{image_size}px-g{grid}"
        self.image_size, self.num_patches = image_size, grid * grid
        self.embed_dim = 3 * (image_size // grid) ** 2
        self.grid = grid
        self.weights_sha256 = ""
        self.provenance = "raw pixels, no weights"

    def features(self, x: Tensor) -> Tensor:
        """(B, 3, S, S) -> (B, grid^2, D)."""
        return fold_tokens(x, self.grid)


class PyramidTokens(FrozenEncoder):
    """A fixed Gaussian pyramid folded into a ``grid x grid`` token map.

    Level ``l`` area-downsamples the normalised frame to ``grid * cells[l]`` per side,
    blurs it with ``sigmas[l]`` (pixels at ``image_size``) and folds it into the tokens,
    scaled by ``weights[l]``. D = 3 * sum(cells[l]^2). Pooling and blur of a level are
    one fixed separable linear map; all levels are applied together as two matrix
    products (rows, then columns).
    """

    def __init__(
        self,
        image_size: int = 64,
        grid: int = 8,
        *,
        sigmas: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0),
        cells: tuple[int, ...] = (2, 2, 2, 2),
        weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0),
        encoder_id: str = "wp-pyramid",
    ) -> None:
        super().__init__()
        if not len(sigmas) == len(cells) == len(weights) >= 1:
            raise ValueError("sigmas, cells and weights need the same length >= 1")
        if any(image_size % (grid * c) for c in cells):
            raise ValueError(f"image_size {image_size} must be a multiple of grid * each cell")
        self.encoder_id = encoder_id
        self.image_size, self.num_patches, self.grid = image_size, grid * grid, grid
        self.sigmas, self.cells, self.weights = sigmas, cells, weights
        self.embed_dim = 3 * sum(c * c for c in cells)
        maps = [level_matrix(image_size, grid * c, s) for s, c in zip(sigmas, cells, strict=True)]
        self.maps: Tensor
        self.register_buffer("maps", torch.cat(maps), persistent=False)  # (sum of sides, S)
        self.weights_sha256 = ""
        self.provenance = (
            f"training-free Gaussian pyramid of the RGB frame at {image_size} px: "
            f"blur sigmas {sigmas} px, cells {cells}, level weights {weights}; no learned weights"
        )

    def features(self, x: Tensor) -> Tensor:
        """(B, 3, S, S) -> (B, grid^2, D)."""
        m = self.maps.to(x.dtype)  # (L, S): every level's map, stacked
        b = x.shape[0]
        y = x.reshape(-1, x.shape[-1]) @ m.T  # (B*3*S, L): all levels along W at once
        y = rearrange(y, "(b c h) l -> h (b c l)", b=b, c=3)  # (S, B*3*L)
        z = rearrange(m @ y, "k (b c l) -> b c k l", b=b, c=3)  # (B, 3, L, L): along H
        levels, start = [], 0
        for cell, w in zip(self.cells, self.weights, strict=True):
            side = self.grid * cell
            block = z[:, :, start : start + side, start : start + side]  # (B, 3, side, side)
            levels.append(w * fold_tokens(block, self.grid))  # (B, g^2, 3 cell^2)
            start += side
        return torch.cat(levels, dim=-1)  # (B, g^2, D)


def level_matrix(image_size: int, side: int, sigma: float) -> Tensor:
    """(side, image_size) linear map: box-average down to ``side``, then Gaussian blur.

    The blur has standard deviation ``sigma`` pixels at ``image_size`` and replicates the
    border (taps beyond the edge fall on the edge sample), as :func:`blur` does.
    """
    pool = torch.zeros(side, image_size)
    factor = image_size // side
    for i in range(side):
        pool[i, i * factor : (i + 1) * factor] = 1.0 / factor
    s = sigma * side / image_size
    if s <= 0:
        return pool
    k = gaussian_kernel(s)
    r = (len(k) - 1) // 2
    smooth = torch.zeros(side, side)
    for i in range(side):
        for t in range(-r, r + 1):
            smooth[i, min(max(i + t, 0), side - 1)] += k[t + r]
    return smooth @ pool


class RandomConvTokens(FrozenEncoder):
    """A frozen, randomly initialised conv net to a ``grid x grid`` map (a control)."""

    def __init__(self, image_size: int = 64, grid: int = 8, dim: int = 64, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        layers: list[nn.Module] = []
        c, side = 3, image_size
        while side > grid:
            layers += [nn.Conv2d(c, dim, 4, stride=2, padding=1), nn.GELU()]
            c, side = dim, side // 2
        self.net = nn.Sequential(*layers[:-1])
        for p in self.net.parameters():
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen) * (0.5 / math.sqrt(p[0].numel())))
        self.encoder_id = f"wp-randconv-{image_size}px-g{grid}"
        self.image_size, self.num_patches, self.embed_dim = image_size, grid * grid, dim
        self.weights_sha256 = ""
        self.provenance = f"random conv net, seed {seed}, untrained (a control)"
        self.freeze()

    def features(self, x: Tensor) -> Tensor:
        """(B, 3, S, S) -> (B, grid^2, D)."""
        out: Tensor = rearrange(self.net(x), "b d h w -> b (h w) d")
        return out


#: Registry id of the offline default encoder.
OFFLINE_DEFAULT = "wp-offline-pyramid-v1"
#: Registry id of the raw-pixel baseline at the same token grid.
PIXEL_BASELINE = "wp-pixels-64px-g8"


def offline_pyramid_v1() -> PyramidTokens:
    """The offline default: 64 px frame, 8 x 8 tokens of 84 dims, four blur levels.

    Chosen on the ranking proxy (``worldplan encoder compare``) among pyramid
    variants, raw pixels and a random conv net; the config is part of the id,
    so any change gets a new version.
    """
    return PyramidTokens(
        image_size=64,
        grid=8,
        sigmas=(1.0, 2.0, 4.0, 8.0),
        cells=(4, 2, 2, 2),
        weights=(1.0, 1.0, 1.5, 2.0),
        encoder_id=OFFLINE_DEFAULT,
    )


def pixel_baseline() -> PixelTokens:
    """Raw pixels at 64 px as 8 x 8 tokens of 192 dims (the proxy's baseline)."""
    enc = PixelTokens(image_size=64, grid=8)
    enc.encoder_id = PIXEL_BASELINE
    return enc
