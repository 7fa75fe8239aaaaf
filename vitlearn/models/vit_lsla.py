"""ViT-LSLA (Hechen, Huang & Zhao, arXiv 2210.17115): Swin's hierarchy with Light Self-Limited-Attention.

The paper: "the rough architecture of the ViT-LSLA block follows the Swin Transformer block; the
difference is that the latter replaces the original self-attention with LSLA", and "for an H×W×3
input, a stem of two 3×3 convolutional layers gives H/4×W/4×96 features"; 4 stages with patch
merging in between. There is no official code and the configuration table was not available to us,
so this is a reading (each choice below is a keyword of :class:`ViTLSLA`):

- Attention: LSA with K = V = X split channel-wise across heads, W_v dropped and W_o kept (our
  reading of the paper's "chose the first approach"; see :mod:`vitlearn.layers.lsla`).
- Blocks, stages, patch merging, shifted windows, head: Swin-T's (embed 96, depths (2, 2, 6, 2),
  heads (3, 6, 12, 24), window 7, MLP ratio 4), reused from :mod:`vitlearn.models.swin`, with
  :class:`~vitlearn.layers.lsla.LightSelfLimitedAttention` in place of WindowAttention (its module
  docstring gives the reading of LSA, DS, B_i and B_o).
- Stem (``ConvStem``): Conv3×3 stride 2 (3 → C/2, no bias) → BatchNorm → GELU → Conv3×3 stride 2
  (C/2 → C) → LayerNorm over channels, channels-last. The paper names only "two 3×3 convolutions";
  the stride 2 + 2 follows from H/4, the C/2 middle width, BatchNorm + GELU between the convolutions
  (without a non-linearity they would collapse into one 7×7 stride-4 linear map, the paper's own
  argument against stacked linear maps) and the final LayerNorm (as after Swin's patch embedding) are
  assumptions. ``conv_stem=False`` uses Swin's 4×4 patch embedding instead.

The paper's experiments are on IP102 and Mini-ImageNet (102 and 100 classes), not ImageNet.
This reading does **not** reach the paper's 18.9 M parameters / 3.5 G MACs: with a 100-class head it
has ≈23.3 M / 3.9 G (Swin-T minus W_k and W_v, plus the stem and tables). The difference must lie in
a configuration detail the available text does not give; we do not tune the configuration to hit
the number (see tests/test_vit_lsla.py for the arithmetic).
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
from einops import rearrange

from ..layers import PatchEmbed, check_divisible, check_image
from ..layers.checks import check_image_size
from ..layers.helpers import to_2tuple
from ..layers.lsla import LightSelfLimitedAttention
from ..registry import register_model
from .swin import SwinTransformer


class ConvStem(nn.Module):
    """Two 3×3 stride-2 convolutions: (B, in_chans, H, W) -> channels-last (B, H/4, W/4, embed_dim).

    Conv3×3/2 (in_chans → embed_dim/2, no bias: BatchNorm follows) → BatchNorm → GELU →
    Conv3×3/2 (embed_dim/2 → embed_dim) → ``norm_layer`` over channels (LayerNorm in ViT-LSLA).
    Padding 1, so each convolution exactly halves an even side.

    Same interface as :class:`~vitlearn.layers.PatchEmbed` with ``flatten=False`` (``img_size``,
    ``patch_size`` = 4, the total stride, ``in_chans``, ``grid_size``), so it can stand in for Swin's
    patch embedding; ``patch_size`` other than 4 is refused. Like PatchEmbed it checks its input:
    a floating-point (B, in_chans, H, W) batch of the size it was built for.
    """

    stride = 4

    def __init__(self, img_size=224, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96,
                 norm_layer: type[nn.Module] | None = nn.LayerNorm):
        super().__init__()
        if patch_size != self.stride:
            raise ValueError(f"ConvStem: two stride-2 convolutions downsample by 4, so patch_size must be 4, "
                             f"got {patch_size}")
        if embed_dim % 2:
            raise ValueError(f"ConvStem: the middle width is embed_dim / 2, so embed_dim must be even, got {embed_dim}")
        self.img_size = to_2tuple(img_size)
        self.patch_size = patch_size
        self.in_chans = in_chans
        check_divisible(self.img_size, patch_size, "stem's stride", "ConvStem")
        self.grid_size = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        mid = embed_dim // 2
        self.conv1 = nn.Conv2d(in_chans, mid, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(mid, embed_dim, kernel_size=3, stride=2, padding=1)
        self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        who = type(self).__name__
        check_image(x, self.in_chans, who)
        check_image_size(tuple(x.shape[-2:]), self.img_size, who)
        x = self.conv2(self.act(self.bn1(self.conv1(x))))
        return self.norm(rearrange(x, "b d h w -> b h w d"))


class ViTLSLA(SwinTransformer):
    """ViT-LSLA classifier: SwinTransformer with LightSelfLimitedAttention and a convolutional stem.

    Args:
        k_is_x, v_is_x, dynamic_scale, inner_bias, outer_bias, outer_bias_mode, outer_bias_across_regions:
            the attention's options, the same in every block (see LightSelfLimitedAttention). The
            defaults are the full ViT-LSLA; switching them off one by one gives the paper's ablations
            (all off but the K/V switches: Swin with W_k and W_v removed; everything off and
            ``conv_stem=False``: Swin-T exactly, up to the ``q``/``k``/``v`` parameter names).
        conv_stem: the two-convolution ``ConvStem`` (True) or Swin's 4×4 patch embedding (False);
            every other argument is as in SwinTransformer (img_size, num_classes, embed_dim, depths,
            num_heads, window_size, mlp_ratio, drop rates, ...).

    Shapes: (B, in_chans, H, W) -> logits (B, num_classes).
    """

    def __init__(self, *, k_is_x: bool = True, v_is_x: bool = True, dynamic_scale: bool = True,
                 inner_bias: bool = True, outer_bias: bool = True, outer_bias_mode: str = "add",
                 outer_bias_across_regions: bool = False, conv_stem: bool = True, **kwargs):
        attn_layer = partial(
            LightSelfLimitedAttention, k_is_x=k_is_x, v_is_x=v_is_x, dynamic_scale=dynamic_scale,
            inner_bias=inner_bias, outer_bias=outer_bias, outer_bias_mode=outer_bias_mode,
            outer_bias_across_regions=outer_bias_across_regions,
        )
        embed_layer = ConvStem if conv_stem else partial(PatchEmbed, flatten=False)
        # Swin's init then applies to the Linear layers (trunc-normal 0.02, zero bias); the tables keep
        # their own (B_i trunc-normal 0.02, DS 1/√d, B_o 0 or 1), the stem PyTorch's defaults.
        super().__init__(attn_layer=attn_layer, embed_layer=embed_layer, **kwargs)


@register_model
def vit_lsla_tiny(**kwargs) -> ViTLSLA:
    """ViT-LSLA as read from the paper: Swin-T's hierarchy (embed 96, depths (2, 2, 6, 2), heads
    (3, 6, 12, 24), window 7, shifted windows), LSLA attention, convolutional stem, 224×224 input."""
    cfg = dict(img_size=224, patch_size=4, embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
               window_size=7)
    return ViTLSLA(**{**cfg, **kwargs})
