"""DINOv2 ViT (register-free), with the official state-dict layout.

The architecture of ``facebookresearch/dinov2`` (``DinoVisionTransformer`` as the
torch.hub ``dinov2_vit*14`` entry points build it): 14 px patch embedding, a class
token, learned position embeddings for a 37 x 37 grid (518 px) interpolated
bicubically to the input grid, pre-LN blocks with fused qkv attention, LayerScale
on both branches, GELU MLP (ratio 4), LayerNorm eps 1e-6 and a final LayerNorm.
The encoder returns the normalised patch tokens (``x_norm_patchtokens``), as
DINO-WM uses them. Key names match the official checkpoints one to one, so those
load with ``strict=True`` after conversion to safetensors (see
:mod:`world_model.encoders.weights`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from einops import rearrange
from torch import Tensor, nn

from world_model.encoders.base import FrozenEncoder

#: Where torch.hub fetches the official pretrained backbones.
OFFICIAL_URLS = {
    "dinov2_vits14": "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth",
    "dinov2_vitb14": "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth",
}

#: DINO-WM feeds the encoder pixels normalised with mean 0.5, std 0.5 (to [-1, 1]).
DINO_WM_MEAN = (0.5, 0.5, 0.5)
DINO_WM_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ViTConfig:
    """Shape of a DINOv2 ViT."""

    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int = 14
    #: Side of the position-embedding grid stored in the checkpoint (518 px / 14).
    pos_grid: int = 37
    mlp_ratio: int = 4

    def __post_init__(self) -> None:
        for name in ("embed_dim", "depth", "num_heads", "patch_size", "pos_grid", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"ViTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim {self.embed_dim} must be divisible by num_heads {self.num_heads}"
            )


CONFIGS = {
    "dinov2_vits14": ViTConfig(embed_dim=384, depth=12, num_heads=6),
    "dinov2_vitb14": ViTConfig(embed_dim=768, depth=12, num_heads=12),
}


def state_dict_layout(cfg: ViTConfig) -> dict[str, tuple[int, ...]]:
    """Every key of the official checkpoint for ``cfg`` and its tensor shape."""
    d, h, p = cfg.embed_dim, cfg.embed_dim * cfg.mlp_ratio, cfg.patch_size
    layout: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, d),
        "pos_embed": (1, 1 + cfg.pos_grid**2, d),
        "mask_token": (1, d),
        "patch_embed.proj.weight": (d, 3, p, p),
        "patch_embed.proj.bias": (d,),
    }
    for i in range(cfg.depth):
        b = f"blocks.{i}."
        layout |= {
            b + "norm1.weight": (d,),
            b + "norm1.bias": (d,),
            b + "attn.qkv.weight": (3 * d, d),
            b + "attn.qkv.bias": (3 * d,),
            b + "attn.proj.weight": (d, d),
            b + "attn.proj.bias": (d,),
            b + "ls1.gamma": (d,),
            b + "norm2.weight": (d,),
            b + "norm2.bias": (d,),
            b + "mlp.fc1.weight": (h, d),
            b + "mlp.fc1.bias": (h,),
            b + "mlp.fc2.weight": (d, h),
            b + "mlp.fc2.bias": (d,),
            b + "ls2.gamma": (d,),
        }
    layout |= {"norm.weight": (d,), "norm.bias": (d,)}
    return layout


class PatchEmbed(nn.Module):
    """Non-overlapping ``p x p`` patches to ``D``-dim tokens with one strided conv."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, N, D)."""
        out: Tensor = rearrange(self.proj(x), "b d h w -> b (h w) d")
        return out


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, L, D) -> (B, L, D)."""
        qkv = rearrange(self.qkv(x), "b l (three h e) -> three b h l e", three=3, h=self.num_heads)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, h, L, e)
        y: Tensor = self.proj(rearrange(out, "b h l e -> b l (h e)"))  # (B, L, D)
        return y


class LayerScale(nn.Module):
    """Per-channel learned scale of a residual branch."""

    def __init__(self, dim: int, init: float = 1.0) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: Tensor) -> Tensor:
        """(..., D) -> (..., D)."""
        return x * self.gamma


class Mlp(nn.Module):
    """Two linear layers with a GELU between them."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """(..., D) -> (..., D)."""
        out: Tensor = self.fc2(self.act(self.fc1(x)))
        return out


class Block(nn.Module):
    """Pre-LN transformer block with LayerScale on the attention and MLP branches."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = Attention(d, cfg.num_heads)
        self.ls1 = LayerScale(d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = Mlp(d, d * cfg.mlp_ratio)
        self.ls2 = LayerScale(d)

    def forward(self, x: Tensor) -> Tensor:
        """(B, L, D) -> (B, L, D)."""
        x = x + self.ls1(self.attn(self.norm1(x)))
        out: Tensor = x + self.ls2(self.mlp(self.norm2(x)))
        return out


class DinoViT(nn.Module):
    """The DINOv2 backbone; parameter names are those of the official checkpoints."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.patch_size, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.pos_grid**2, d))
        self.mask_token = nn.Parameter(
            torch.zeros(1, d)
        )  # unused at inference, kept for the layout
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self._init_random()

    def _init_random(self) -> None:
        """The official initialisation (used only when no checkpoint is loaded)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def interpolated_pos_embed(self, grid_h: int, grid_w: int) -> Tensor:
        """Position embeddings (1, 1 + grid_h * grid_w, D) for the input's patch grid."""
        g = self.cfg.pos_grid
        if (grid_h, grid_w) == (g, g):
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]  # (1,1,D), (1,g*g,D)
        grid = rearrange(patch_pos.float(), "1 (h w) d -> 1 d h w", h=g)  # (1, D, g, g)
        # As the reference: a scale factor with a 0.1 offset against rounding down.
        scale = ((grid_h + 0.1) / g, (grid_w + 0.1) / g)
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False)
        if tuple(grid.shape[-2:]) != (grid_h, grid_w):
            raise RuntimeError(f"pos_embed interpolated to {tuple(grid.shape[-2:])}")
        patch_pos = rearrange(grid, "1 d h w -> 1 (h w) d").to(self.pos_embed.dtype)
        return torch.cat([cls_pos, patch_pos], dim=1)  # (1, 1 + h*w, D)

    def forward(self, x: Tensor) -> Tensor:
        """Normalised images (B, 3, H, W), H and W multiples of 14 -> patch tokens (B, N, D)."""
        p = self.cfg.patch_size
        grid_h, grid_w = x.shape[-2] // p, x.shape[-1] // p
        tokens = self.patch_embed(x)  # (B, N, D)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)  # (B, 1, D)
        z = torch.cat([cls, tokens], dim=1) + self.interpolated_pos_embed(grid_h, grid_w)
        for blk in self.blocks:
            z = blk(z)  # (B, 1 + N, D)
        out: Tensor = self.norm(z)[:, 1:]  # (B, N, D): x_norm_patchtokens
        return out


class DinoV2Encoder(FrozenEncoder):
    """A frozen DINOv2 backbone behind the :class:`~world_model.types.Encoder` protocol.

    Args:
        name: Registry id (``dinov2_vits14`` / ``dinov2_vitb14``) or a test variant's name.
        cfg: Backbone shape.
        state_dict: Weights in the official layout (checked key by key by the caller).
        weights_sha256: sha256 of the safetensors file the weights came from.
        provenance: One line on where the weights came from.
        image_size: Input side in pixels, a multiple of the patch size (DINO-WM: 224).
    """

    def __init__(
        self,
        name: str,
        cfg: ViTConfig,
        *,
        state_dict: dict[str, Tensor],
        weights_sha256: str,
        provenance: str,
        image_size: int = 224,
    ) -> None:
        super().__init__()
        if image_size < cfg.patch_size or image_size % cfg.patch_size:
            raise ValueError(
                f"image_size must be a positive multiple of the patch size {cfg.patch_size} "
                f"(e.g. 112 or 224), got {image_size}"
            )
        with torch.device("meta"):  # no random init: every tensor comes from state_dict
            self.backbone = DinoViT(cfg)
        self.backbone.load_state_dict(state_dict, strict=True, assign=True)
        self.encoder_id = name
        self.image_size = image_size
        self.num_patches = (image_size // cfg.patch_size) ** 2
        self.embed_dim = cfg.embed_dim
        self.weights_sha256 = weights_sha256
        self.provenance = provenance
        self.mean, self.std = DINO_WM_MEAN, DINO_WM_STD
        self.freeze()

    def features(self, x: Tensor) -> Tensor:
        """Normalised images (B, 3, S, S) -> x_norm_patchtokens (B, N, D)."""
        out: Tensor = self.backbone(x)
        return out


def random_state_dict(cfg: ViTConfig, seed: int = 0) -> dict[str, Tensor]:
    """A randomly initialised state dict in the official layout (tests, fixtures)."""
    torch.manual_seed(seed)
    model = DinoViT(cfg)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
