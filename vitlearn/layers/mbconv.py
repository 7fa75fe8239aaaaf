"""Inverted-bottleneck convolution (MBConv) with squeeze-excitation, as MaxViT uses it.

MBConv (MobileNetV2, EfficientNet) expands the width by 1×1 convolution, mixes space with a cheap
depthwise 3×3 convolution, re-weights channels by squeeze-excitation and projects back by 1×1
convolution. MaxViT runs one before the attention of every block, pre-normalised and residual.

The modules take and return channels-last maps (B, H, W, C), the layout of the attention that
follows, so no permutation is needed between them; 1×1 convolutions are then matrix products over
the last axis, and the depthwise convolution sees a channels-last (``torch.channels_last``) tensor.
Weights keep ``nn.Conv2d`` / ``nn.BatchNorm2d`` shapes, so checkpoints of NCHW implementations load.

In eval mode each BatchNorm is folded into the convolution next to it (exact: an affine map of a
linear map is linear), which removes three passes over the widest tensors, and the GELUs ride on the
convolutions (:mod:`vitlearn.layers.fused`); in training mode the BatchNorms run as they are, with
batch statistics and running-average updates.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from . import fused
from .drop_path import DropPath


def tf_same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow's "SAME" padding of a channels-last map (B, H, W, C) for a ``kernel``/``stride`` conv or pool.

    The output has ceil(H / stride) rows; the total padding that needs is split with the extra row at
    the bottom (and column at the right), which is what makes TF-trained weights see the same
    neighbourhoods (a 3×3 stride-2 conv on an even map pads only the bottom and right by one).
    """
    pads = []
    for size in (x.shape[2], x.shape[1]):  # F.pad lists the last spatial axis first
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, (0, 0, *pads)) if any(pads) else x


def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The eval-mode BatchNorm as an affine map per channel: BN(x) = scale · x + shift."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """BatchNorm2d applied to a channels-last map (B, H, W, C), through its NCHW view."""
    return bn(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def _conv1x1(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    return F.linear(x, conv.weight.flatten(1), conv.bias)


class SqueezeExcite(nn.Module):
    """Channel gate: x · σ(fc2(SiLU(fc1(mean over space of x)))), fc1/fc2 1×1 convs with bias.

    ``gate`` returns the gate alone (B, C), so a following linear map can absorb the product
    (see :class:`MBConv`). Shapes: (B, H, W, C) -> (B, H, W, C).
    """

    def __init__(self, dim: int, rd_dim: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, rd_dim, 1)
        self.fc2 = nn.Conv2d(rd_dim, dim, 1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(1, 2))
        return torch.sigmoid(F.linear(F.silu(F.linear(s, self.fc1.weight.flatten(1), self.fc1.bias)),
                                      self.fc2.weight.flatten(1), self.fc2.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)[:, None, None, :]


class PoolShortcut(nn.Module):
    """MBConv's shortcut when it downsamples: 2×2 average pool (stride 2), then a 1×1 conv with bias
    if the width changes. Shapes: (B, H, W, dim) -> (B, H/2, W/2, out_dim), H and W even (where
    TensorFlow's "SAME" pooling needs no padding).
    """

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.expand = nn.Conv2d(dim, out_dim, 1) if dim != out_dim else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] % 2 or x.shape[2] % 2:
            raise ValueError(f"PoolShortcut: pools 2x2 neighbourhoods, so the map's sides must be even; "
                             f"got {x.shape[1]}x{x.shape[2]}")
        x = rearrange(x, "b (h i) (w j) c -> b h w c (i j)", i=2, j=2).mean(-1)
        return _conv1x1(x, self.expand) if self.expand is not None else x


class MBConv(nn.Module):
    """Pre-norm MBConv with squeeze-excitation, MaxViT's convolution.

    shortcut(x) + DropPath(residual(x)) with

    - shortcut: identity, or :class:`PoolShortcut` when the block downsamples (``stride=2``);
    - residual: BN (``pre_norm``, no activation) -> 1×1 conv to ``expand_ratio`` · out_dim, no bias
      (``conv1_1x1``) -> BN -> GELU -> 3×3 depthwise conv with ``stride``, no bias (``conv2_kxk``)
      -> BN -> GELU -> :class:`SqueezeExcite` to ``se_ratio`` · out_dim -> 1×1 conv to out_dim with
      bias (``conv3_1x1``).

    ``tf_padding`` pads stride-2 convolutions and pools as TensorFlow's "SAME" does (bottom/right
    only on even maps), needed by TF-trained weights; otherwise the depthwise conv pads 1 all round.
    ``gelu_approximate`` is passed to ``F.gelu`` ("tanh" in the TF models).

    Shapes: (B, H, W, dim) -> (B, H/stride, W/stride, out_dim), channels-last.
    """

    def __init__(self, dim: int, out_dim: int, stride: int = 1, expand_ratio: float = 4.0, se_ratio: float = 0.25,
                 drop_path: float = 0.0, bn_eps: float = 1e-3, tf_padding: bool = True,
                 gelu_approximate: str = "tanh"):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"MBConv: stride must be 1 or 2, got {stride}")
        if stride == 1 and dim != out_dim:
            raise ValueError(f"MBConv: a block that keeps the resolution keeps the width ({dim}), got out_dim={out_dim}")
        mid = int(out_dim * expand_ratio)
        self.stride, self.tf_padding, self.gelu_approximate = stride, tf_padding, gelu_approximate
        self.shortcut = PoolShortcut(dim, out_dim) if stride == 2 else None
        self.pre_norm = nn.BatchNorm2d(dim, eps=bn_eps)
        self.conv1_1x1 = nn.Conv2d(dim, mid, 1, bias=False)
        self.norm1 = nn.BatchNorm2d(mid, eps=bn_eps)
        self.conv2_kxk = nn.Conv2d(mid, mid, 3, stride=stride, groups=mid, bias=False)
        self.norm2 = nn.BatchNorm2d(mid, eps=bn_eps)
        self.se = SqueezeExcite(mid, int(out_dim * se_ratio))
        self.conv3_1x1 = nn.Conv2d(mid, out_dim, 1)
        self.drop_path = DropPath(drop_path)

    def _depthwise(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   gelu: str | None = None) -> torch.Tensor:
        padding = 1
        if self.stride == 2 and self.tf_padding:
            x, padding = tf_same_pad(x, 3, 2), 0
        x = fused.conv2d(x.permute(0, 3, 1, 2), weight, bias, self.stride, padding, weight.shape[0], gelu)
        return x.permute(0, 2, 3, 1)

    def _residual_train(self, x: torch.Tensor) -> torch.Tensor:
        x = _conv1x1(_bn(x, self.pre_norm), self.conv1_1x1)
        x = F.gelu(_bn(x, self.norm1), approximate=self.gelu_approximate)
        x = self._depthwise(x, self.conv2_kxk.weight, None)
        x = self.se(F.gelu(_bn(x, self.norm2), approximate=self.gelu_approximate))
        return _conv1x1(x, self.conv3_1x1)

    def _residual_folded(self, x: torch.Tensor) -> torch.Tensor:
        # BN0 -> conv1 -> BN1 is one affine map: W' = diag(s1) W diag(s0), b' = s1 · (W t0) + t1.
        s0, t0 = bn_scale_shift(self.pre_norm)
        s1, t1 = bn_scale_shift(self.norm1)
        w1 = self.conv1_1x1.weight.flatten(1)
        x = fused.linear(x, s1[:, None] * w1 * s0, s1 * (w1 @ t0) + t1, gelu=self.gelu_approximate)
        # depthwise conv -> BN2: scale each filter, the shift becomes its bias (padding is on the input).
        s2, t2 = bn_scale_shift(self.norm2)
        x = self._depthwise(x, self.conv2_kxk.weight * s2[:, None, None, None], t2, gelu=self.gelu_approximate)
        # the SE gate scales conv3's input channels per image: fold it into a per-image weight.
        gate = self.se.gate(x)  # (B, mid)
        w3 = self.conv3_1x1.weight.flatten(1)  # (out, mid)
        B, H, W, _ = x.shape
        out = torch.baddbmm(self.conv3_1x1.bias, x.reshape(B, H * W, -1), (w3 * gate[:, None, :]).transpose(1, 2))
        return out.view(B, H, W, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.shortcut is None else self.shortcut(x)
        residual = self._residual_train(x) if self.training else self._residual_folded(x)
        return shortcut + self.drop_path(residual)
