"""Patch embedding: cut the image into non-overlapping p×p patches and project each to a vector."""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from .checks import check_divisible, check_image, check_image_size
from .helpers import to_2tuple


class PatchEmbed(nn.Module):
    """Non-overlapping patches, linearly projected (a p×p convolution with stride p).

    Args:
        img_size: the size the model is built for; with ``strict_img_size`` it is the only size accepted.
        patch_size: side p of each square patch.
        flatten: return tokens (B, N, D) with N = (H/p)(W/p); otherwise a channels-last grid (B, H/p, W/p, D).
        norm_layer: optional normalisation over D (Swin uses LayerNorm here, ViT none).

    Shapes: (B, in_chans, H, W) -> (B, N, D) or (B, H/p, W/p, D).
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        norm_layer: type[nn.Module] | None = None,
        flatten: bool = True,
        strict_img_size: bool = True,
        bias: bool = True,
    ):
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.patch_size = patch_size
        self.in_chans = in_chans
        check_divisible(self.img_size, patch_size, "patch size", "PatchEmbed")
        self.grid_size = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.flatten = flatten
        self.strict_img_size = strict_img_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=bias)
        self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_chans, type(self).__name__)
        size = tuple(x.shape[-2:])
        if self.strict_img_size:
            check_image_size(size, self.img_size, type(self).__name__,
                             "the model's position information is built for that size, so ")
        check_divisible(size, self.patch_size, "patch size", type(self).__name__)
        x = self.proj(x)
        x = rearrange(x, "b d h w -> b (h w) d" if self.flatten else "b d h w -> b h w d")
        return self.norm(x)
