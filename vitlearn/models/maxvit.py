"""MaxViT (Tu et al., "MaxViT: Multi-Axis Vision Transformer", ECCV 2022).

Image -> convolutional stem (stride 2) -> 4 stages of MaxViT blocks -> global average -> LayerNorm
-> Linear + tanh -> linear classifier. Every block is

    MBConv (the first of a stage downsamples by 2) -> block attention unit -> grid attention unit

where an attention unit is x + DropPath(Attn(LN(x))), then x + DropPath(FFN(LN(x))), with the
attention inside P×P windows (block) or inside G×G dilated groups spaced H/G apart (grid). The
paper calls this "multi-axis attention": "blocked local and dilated global attention", linear in the
number of tokens. One block connects every position with every other where the map's sides are at
most P·G (every stage but the first at 224: 56 > 7·7 there), see ``vitlearn.layers.multi_axis``.

The module and state-dict layout follows timm's ``maxvit_*_tf_*`` ports of the TensorFlow
weights (``stem``, ``stages.i.blocks.j.{conv, attn_block, attn_grid}``, ``head``), so
:func:`vitlearn.from_timm` only reshapes the relative position tables. Internally maps are
channels-last (B, H, W, C) from the stem to the head: the attention needs that layout, and the
convolutions run on its ``torch.channels_last`` view, so no layout change happens between the two.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import DropPath, Mlp, check_image, fused
from ..layers.helpers import init_linear_, to_2tuple
from ..layers.mbconv import MBConv, bn_scale_shift, tf_same_pad
from ..layers.multi_axis import PartitionAttention
from ..registry import register_variants

Pair = tuple[int, int]


def _gelu(approximate: str):
    return lambda: nn.GELU(approximate=approximate)


class Stem(nn.Module):
    """3×3 conv, stride 2 (with bias) -> BatchNorm -> GELU -> 3×3 conv, stride 1 (with bias), no norm after.

    Shapes: (B, in_chans, H, W) -> channels-last (B, H/2, W/2, out_dim). In eval mode the BatchNorm
    is folded into the first conv.
    """

    def __init__(self, in_chans: int, out_dim: int, bn_eps: float = 1e-3, tf_padding: bool = True,
                 gelu_approximate: str = "tanh"):
        super().__init__()
        self.tf_padding, self.gelu_approximate = tf_padding, gelu_approximate
        self.conv1 = nn.Conv2d(in_chans, out_dim, 3, stride=2)
        self.norm1 = nn.BatchNorm2d(out_dim, eps=bn_eps)
        self.conv2 = nn.Conv2d(out_dim, out_dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # channels-last from here on
        padding = 1
        if self.tf_padding:
            x, padding = tf_same_pad(x, 3, 2), 0
        x = x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        if self.training:
            x = F.gelu(self.norm1(F.conv2d(x, self.conv1.weight, self.conv1.bias, 2, padding)),
                       approximate=self.gelu_approximate)
        else:
            scale, shift = bn_scale_shift(self.norm1)
            x = fused.conv2d(x, self.conv1.weight * scale[:, None, None, None], scale * self.conv1.bias + shift, 2,
                             padding, gelu=self.gelu_approximate)
        x = fused.conv2d(x, self.conv2.weight, self.conv2.bias, 1, 1)
        return x.permute(0, 2, 3, 1)


class AttentionUnit(nn.Module):
    """x + DropPath(PartitionAttention(LN(x))), then x + DropPath(FFN(LN(x))): one block or grid step.

    Shapes: (B, H, W, dim) -> (B, H, W, dim).
    """

    def __init__(self, dim: int, num_heads: int, size: Pair, partition: str, mlp_ratio: float = 4.0,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0, norm_eps: float = 1e-5,
                 gelu_approximate: str = "tanh"):
        super().__init__()
        self.gelu_approximate = gelu_approximate
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = PartitionAttention(dim, num_heads, size, partition, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=_gelu(gelu_approximate), drop=drop)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            x = x + self.drop_path1(self.attn(self.norm1(x)))
            return x + self.drop_path2(self.mlp(self.norm2(x)))
        # Eval: drop path and dropout are identities, so each residual add and the FFN's GELU can ride
        # on a matrix product (one pass over memory fewer each, see vitlearn.layers.fused).
        x = self.attn(self.norm1(x), residual=x)
        h = fused.linear(self.norm2(x), self.mlp.fc1.weight, self.mlp.fc1.bias, gelu=self.gelu_approximate)
        return fused.linear(h, self.mlp.fc2.weight, self.mlp.fc2.bias, residual=x)


class MaxViTBlock(nn.Module):
    """MBConv -> block attention unit -> grid attention unit. Shapes: (B, H, W, dim) -> (B, H/s, W/s, out_dim)."""

    def __init__(self, dim: int, out_dim: int, stride: int, head_dim: int, window: Pair, grid: Pair,
                 mlp_ratio: float = 4.0, expand_ratio: float = 4.0, se_ratio: float = 0.25, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, bn_eps: float = 1e-3, norm_eps: float = 1e-5,
                 tf_padding: bool = True, gelu_approximate: str = "tanh"):
        super().__init__()
        if out_dim % head_dim:
            raise ValueError(f"MaxViTBlock: width {out_dim} is not a multiple of the head dimension {head_dim}")
        self.conv = MBConv(dim, out_dim, stride, expand_ratio, se_ratio, drop_path, bn_eps, tf_padding,
                           gelu_approximate)
        unit = dict(mlp_ratio=mlp_ratio, drop=drop, attn_drop=attn_drop, drop_path=drop_path, norm_eps=norm_eps,
                    gelu_approximate=gelu_approximate)
        self.attn_block = AttentionUnit(out_dim, out_dim // head_dim, window, "block", **unit)
        self.attn_grid = AttentionUnit(out_dim, out_dim // head_dim, grid, "grid", **unit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn_grid(self.attn_block(self.conv(x)))


class MaxViTStage(nn.Module):
    """``depth`` MaxViT blocks, the first downsampling by 2. Shapes: (B, H, W, dim) -> (B, H/2, W/2, out_dim)."""

    def __init__(self, dim: int, out_dim: int, depth: int, drop_path=(), **block):
        super().__init__()
        drop_path = list(drop_path) or [0.0] * depth
        self.blocks = nn.Sequential(*[
            MaxViTBlock(dim if i == 0 else out_dim, out_dim, 2 if i == 0 else 1, drop_path=drop_path[i], **block)
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class NormMlpHead(nn.Module):
    """Global average -> LayerNorm -> Linear(C, hidden) -> tanh -> dropout -> Linear(hidden, classes).

    Shapes: channels-last (B, H, W, C) -> (B, num_classes), or (B, hidden) with ``pre_logits``.
    """

    def __init__(self, dim: int, hidden: int, num_classes: int, drop: float = 0.0, norm_eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.pre_logits = nn.Sequential(OrderedDict(fc=nn.Linear(dim, hidden), act=nn.Tanh()))
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(hidden, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(self.norm(x.mean(dim=(1, 2))))
        return x if pre_logits else self.fc(self.drop(x))


STRIDE = 32  # stem 2, then 2 per stage


def _size_problem(side: int, window: int, grid: int) -> str | None:
    if side % STRIDE:
        return f"{side} is not a multiple of the total stride {STRIDE}"
    for stage, stride in enumerate((4, 8, 16, 32), start=1):
        r = side // stride
        if r % window or r % grid:
            return (f"stage {stage}'s map side {r} is not a multiple of both the window {window} and the "
                    f"grid {grid}")
    return None


def check_maxvit_size(size: Pair, window: Pair, grid: Pair, who: str) -> None:
    """Raises a ValueError, listing sides that work, unless every stage's map (H/4 ... H/32) can be cut
    into the block windows and the grids."""
    for side, p, g in zip(size, window, grid):
        problem = _size_problem(side, p, g)
        if problem:
            unit = STRIDE * math.lcm(p, g)
            raise ValueError(
                f"{who}: a {size[0]}x{size[1]} image does not fit {p}x{p} blocks and {g}x{g} grids: {problem}. "
                f"Every stage's map (H/4, H/8, H/16, H/32) must be a multiple of both, so each side must be a "
                f"multiple of {STRIDE}·lcm({p}, {g}) = {unit}: {unit}, {2 * unit}, {3 * unit}, ... "
                f"(or build the model with another window_size / grid_size)")


class MaxViT(nn.Module):
    """MaxViT classifier.

    Args:
        img_size: the input size the model is built for; it sets the default partition sizes.
            Any size whose every stage fits the partitions runs (there are no size-bound masks).
        stem_width, dims, depths: the stem's width and each stage's width and number of blocks.
        head_dim: channels per attention head (32; heads = width / 32).
        window_size, grid_size: P and G; by default img_size / 32 (7 at 224, 12 at 384, 16 at 512), so
            the last stage is one window and one grid, as in the paper.
        mlp_ratio, expand_ratio, se_ratio: FFN hidden width, MBConv expansion, SE reduction (of the
            output width).
        head_hidden_size: width of the head's tanh layer (the last stage's width by default).
        drop_rate, attn_drop_rate: dropout; drop_path_rate: stochastic depth, growing linearly over
            all blocks from 0 (0 by default; the paper trained T/S/B/L with 0.2/0.3/0.4/0.6).
        bn_eps, norm_eps: BatchNorm (1e-3, TF's default) and LayerNorm (1e-5) epsilons.
        tf_padding: TensorFlow "SAME" padding of the stride-2 convolutions (pad bottom/right only), as
            the TF-trained weights need; False pads symmetrically.
        gelu_approximate: "tanh" (TF's GELU) or "none" (exact erf GELU), for every GELU but the SE's SiLU.

    Shapes: (B, in_chans, H, W) -> logits (B, num_classes); ``forward_features`` returns the last
    stage's channels-last map (B, H/32, W/32, dims[-1]).
    """

    def __init__(self, img_size=224, in_chans=3, num_classes=1000, stem_width=64, dims=(64, 128, 256, 512),
                 depths=(2, 2, 5, 2), head_dim=32, window_size=None, grid_size=None, mlp_ratio=4.0,
                 expand_ratio=4.0, se_ratio=0.25, head_hidden_size=None, drop_rate=0.0, attn_drop_rate=0.0,
                 drop_path_rate=0.0, bn_eps=1e-3, norm_eps=1e-5, tf_padding=True, gelu_approximate="tanh"):
        super().__init__()
        if len(dims) != len(depths) or len(dims) != 4:
            raise ValueError(f"MaxViT: dims {tuple(dims)} and depths {tuple(depths)} need one entry per each of 4 stages")
        who = type(self).__name__
        self.img_size = to_2tuple(img_size)
        self.in_chans, self.num_classes = in_chans, num_classes
        if window_size is None and any(s % STRIDE for s in self.img_size):
            raise ValueError(f"{who}: img_size {img_size} is not a multiple of the total stride {STRIDE}, so no "
                             f"default window (img_size / {STRIDE}) exists; use e.g. 224, 384 or 512, or pass window_size")
        default = tuple(s // STRIDE for s in self.img_size)
        self.window_size = to_2tuple(window_size) if window_size is not None else default
        self.grid_size = to_2tuple(grid_size) if grid_size is not None else self.window_size
        check_maxvit_size(self.img_size, self.window_size, self.grid_size, who)
        self.num_features = dims[-1]

        self.stem = Stem(in_chans, stem_width, bn_eps, tf_padding, gelu_approximate)
        total = sum(depths)
        # A Python list, not torch.linspace, which would live on the meta device under `torch.device("meta")`.
        dpr = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        block = dict(head_dim=head_dim, window=self.window_size, grid=self.grid_size, mlp_ratio=mlp_ratio,
                     expand_ratio=expand_ratio, se_ratio=se_ratio, drop=drop_rate, attn_drop=attn_drop_rate,
                     bn_eps=bn_eps, norm_eps=norm_eps, tf_padding=tf_padding, gelu_approximate=gelu_approximate)
        stages, dim = [], stem_width
        for i, (out_dim, depth) in enumerate(zip(dims, depths)):
            first = sum(depths[:i])
            stages.append(MaxViTStage(dim, out_dim, depth, dpr[first:first + depth], **block))
            dim = out_dim
        self.stages = nn.Sequential(*stages)
        self.head = NormMlpHead(dims[-1], head_hidden_size or dims[-1], num_classes, drop_rate, norm_eps)
        init_linear_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        who = type(self).__name__
        check_image(x, self.in_chans, who)
        check_maxvit_size(tuple(x.shape[-2:]), self.window_size, self.grid_size, who)
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# timm's names for the TF ports. name -> (stem width, stage widths, depths, img_size).
_T, _S = (64, (64, 128, 256, 512), (2, 2, 5, 2)), (64, (96, 192, 384, 768), (2, 2, 5, 2))
_B, _L = (64, (96, 192, 384, 768), (2, 6, 14, 2)), (128, (128, 256, 512, 1024), (2, 6, 14, 2))
_XL = (192, (192, 384, 768, 1536), (2, 6, 14, 2))
_VARIANTS = {f"maxvit_{size}_tf_{img}": (*cfg, img)
             for size, cfg in [("tiny", _T), ("small", _S), ("base", _B), ("large", _L)] for img in (224, 384, 512)}
_VARIANTS.update({f"maxvit_xlarge_tf_{img}": (*_XL, img) for img in (384, 512)})

register_variants(globals(), MaxViT, _VARIANTS, ("stem_width", "dims", "depths", "img_size"),
                  "MaxViT (TF port): stem {stem_width}, widths {dims}, depths {depths}, {img_size}x{img_size} "
                  "input, block and grid partitions of img_size/32.")
