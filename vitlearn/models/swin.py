"""Swin Transformer (Liu et al., 2021): a hierarchical transformer with shifted local windows.

Image -> 4×4 patches, linearly embedded and normalised -> 4 stages of pre-norm blocks that attend
inside M×M windows (every second block with windows shifted by M/2, so information crosses window
borders) -> between stages, patch merging halves the resolution and doubles the width -> LayerNorm
-> average pool -> linear classifier.

The cost of attention is linear in the number of tokens (each token sees M² others), and the
stages give a pyramid of feature maps at strides 4, 8, 16 and 32, as in a CNN.

The module layout follows timm (patch merging at the *start* of stages 2–4, classifier at
``head.fc``), so timm's state dicts load as they are (see :func:`vitlearn.from_timm`).
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn

from ..layers import DropPath, Mlp, PatchEmbed, check_image
from ..layers.helpers import to_2tuple
from ..layers.window import (
    PatchMerging,
    WindowAttention,
    cyclic_shift,
    reverse_cyclic_shift,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
from ..layers.helpers import init_linear_
from ..registry import register_variants

Pair = tuple[int, int]


def fit_window(resolution: Pair, window: Pair, shift: Pair) -> tuple[Pair, Pair]:
    """The window and shift a block actually uses on a ``resolution`` map, per axis.

    A map no larger than the window is one window: the window shrinks to the map and there is
    nothing to shift (Swin-T's stage 4 at 224: a 7×7 map, plain W-MSA in both blocks).
    """
    fitted = tuple(r if r <= w else w for r, w in zip(resolution, window))
    shifted = tuple(0 if r <= w else s for r, w, s in zip(resolution, window, shift))
    return fitted, shifted


class SwinTransformerBlock(nn.Module):
    """Pre-norm block with (shifted) window attention: x + W-MSA(LN(x)), then x + MLP(LN(x)).

    With a shift, the map is rolled by −shift before the windows are cut and rolled back after;
    the precomputed ``attn_mask`` (a non-persistent buffer) keeps tokens that the roll brought
    together from opposite image edges from attending to each other.

    ``attn_layer`` builds the attention as ``attn_layer(dim, num_heads, window, qkv_bias=, attn_drop=,
    proj_drop=)`` and is called as ``attn(windows, mask=)``: WindowAttention by default, any module
    with that signature otherwise (ViT-LSLA passes its LightSelfLimitedAttention).

    Shapes: (B, H, W, dim) -> (B, H, W, dim), with (H, W) = ``input_resolution``.
    """

    def __init__(self, dim, num_heads, input_resolution, window_size=7, shift_size=0, mlp_ratio=4.0,
                 qkv_bias=True, drop=0.0, attn_drop=0.0, drop_path=0.0, norm_eps=1e-5, attn_layer=WindowAttention):
        super().__init__()
        self.input_resolution = to_2tuple(input_resolution)
        self.window_size, self.shift_size = fit_window(
            self.input_resolution, to_2tuple(window_size), to_2tuple(shift_size)
        )
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = attn_layer(dim, num_heads, self.window_size, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.drop_path2 = DropPath(drop_path)
        mask = None
        if any(self.shift_size):
            mask = shifted_window_mask(*self.input_resolution, self.window_size, self.shift_size)
        # Non-persistent: rebuilt from the size, never in a checkpoint, yet moved by `.to()`.
        self.register_buffer("attn_mask", mask, persistent=False)

    def _window_attention(self, x: torch.Tensor) -> torch.Tensor:
        H, W = self.input_resolution
        if any(self.shift_size):
            x = cyclic_shift(x, self.shift_size)
        x = window_partition(x, self.window_size)
        x = self.attn(x, mask=self.attn_mask)
        x = window_reverse(x, self.window_size, H, W)
        if any(self.shift_size):
            x = reverse_cyclic_shift(x, self.shift_size)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:3]) != self.input_resolution:
            raise ValueError(
                f"{type(self).__name__}: built for {self.input_resolution[0]}x{self.input_resolution[1]} "
                f"maps (its attention mask depends on the size), got {x.shape[1]}x{x.shape[2]}"
            )
        x = x + self.drop_path1(self._window_attention(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))

    def extra_repr(self) -> str:
        return f"input_resolution={self.input_resolution}, window_size={self.window_size}, shift_size={self.shift_size}"


class SwinStage(nn.Module):
    """Optional patch merging (stages 2–4), then ``depth`` blocks alternating plain and shifted windows.

    Shapes: (B, H, W, dim) -> (B, H/2, W/2, out_dim) with ``downsample``, else (B, H, W, dim).
    """

    def __init__(self, dim, out_dim, input_resolution, depth, num_heads, window_size=7, downsample=True,
                 mlp_ratio=4.0, qkv_bias=True, drop=0.0, attn_drop=0.0, drop_path=(), norm_eps=1e-5,
                 attn_layer=WindowAttention):
        super().__init__()
        if not downsample and dim != out_dim:
            raise ValueError(f"SwinStage: without downsampling the width stays {dim}, got out_dim={out_dim}")
        h, w = to_2tuple(input_resolution)
        self.output_resolution = (h // 2, w // 2) if downsample else (h, w)
        self.downsample = PatchMerging(dim, out_dim, norm_eps) if downsample else nn.Identity()
        window = to_2tuple(window_size)
        half_window = (window[0] // 2, window[1] // 2)
        drop_path = list(drop_path) or [0.0] * depth
        self.blocks = nn.Sequential(*[
            SwinTransformerBlock(out_dim, num_heads, self.output_resolution, window,
                                 shift_size=half_window if i % 2 else 0, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                                 drop=drop, attn_drop=attn_drop, drop_path=drop_path[i], norm_eps=norm_eps,
                                 attn_layer=attn_layer)
            for i in range(depth)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class ClassifierHead(nn.Module):
    """Global average pool over the map, dropout, linear classifier. Shapes: (B, H, W, C) -> (B, num_classes)."""

    def __init__(self, in_features: int, num_classes: int, drop: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(x.mean(dim=(1, 2)))
        return x if pre_logits else self.fc(x)


def _side_problem(side: int, patch: int, window: int, num_stages: int) -> str | None:
    """Why an image side cannot be processed, or None. Each stage's map side must be a multiple of
    the window or no larger than it, and even wherever patch merging halves it."""
    if side % patch:
        return f"{side} is not a multiple of the patch size {patch}"
    r = side // patch
    for stage in range(num_stages):
        if stage > 0:
            if r % 2:
                return f"stage {stage + 1}'s patch merging would halve an odd map side {r}"
            r //= 2
        if r > window and r % window:
            return f"stage {stage + 1}'s map side {r} is neither a multiple of the window {window} nor at most {window}"
    return None


def _sides_that_work(patch: int, window: int, num_stages: int, count: int = 5) -> list[int]:
    # Multiples of patch · 2^(stages−1) · window always work, so `count` of them bound the search.
    period = patch * 2 ** (num_stages - 1) * window
    sides = [s for s in range(patch, count * period + 1, patch) if _side_problem(s, patch, window, num_stages) is None]
    return sides[:count]


def check_swin_size(size: Pair, patch: int, window: Pair, num_stages: int, who: str) -> None:
    """Raises a ValueError, listing the sides that work, if the windows cannot tile an image of ``size``."""
    problems = [_side_problem(s, patch, w, num_stages) for s, w in zip(size, window)]
    if not any(problems):
        return
    problem = next(p for p in problems if p)
    if window[0] == window[1]:
        works = f"each side one of {', '.join(map(str, _sides_that_work(patch, window[0], num_stages)))}, ..."
    else:
        works = "heights {} ... and widths {} ...".format(
            *(", ".join(map(str, _sides_that_work(patch, w, num_stages))) for w in window)
        )
    win = f"{window[0]}" if window[0] == window[1] else f"{window[0]}x{window[1]}"
    raise ValueError(
        f"{who}: a {size[0]}x{size[1]} image cannot be cut into windows: {problem}. Sizes that work with "
        f"patch {patch}, window {win} and {num_stages} stages: {works} (every stage's map must be a multiple "
        f"of the window or no larger than it, and even before each patch merging)"
    )


class SwinTransformer(nn.Module):
    """Swin Transformer classifier.

    Args:
        img_size: input size; the attention masks are built for it, so it is the only size accepted.
        patch_size, embed_dim, depths, num_heads, window_size, mlp_ratio: the architecture; stage i has
            width embed_dim · 2^i and ``num_heads[i]`` heads.
        drop_rate, attn_drop_rate: dropout.
        drop_path_rate: stochastic depth, growing linearly over all blocks from 0 to this value. It
            defaults to 0; the paper trained Swin-T/S/B with 0.2/0.3/0.5.
        norm_eps: LayerNorm epsilon (PyTorch's default, as in Swin).
        attn_layer: the window attention of every block (see SwinTransformerBlock); WindowAttention.
        embed_layer: builds ``patch_embed`` as ``embed_layer(img_size, patch_size, in_chans, embed_dim,
            norm_layer=)``; it must return a channels-last map (B, H/patch_size, W/patch_size, embed_dim)
            and expose ``img_size``, ``in_chans`` and ``grid_size``. Default: PatchEmbed (patch_size×patch_size
            patches, linearly embedded, LayerNorm).

    Shapes: (B, in_chans, H, W) -> logits (B, num_classes); ``forward_features`` returns the normalised
    channels-last map (B, H/32, W/32, embed_dim · 8) (for 4 stages and patch 4).
    """

    def __init__(self, img_size=224, patch_size=4, in_chans=3, num_classes=1000, embed_dim=96,
                 depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7, mlp_ratio=4.0, qkv_bias=True,
                 drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.0, norm_eps=1e-5, attn_layer=WindowAttention,
                 embed_layer=partial(PatchEmbed, flatten=False)):
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {tuple(depths)} and num_heads {tuple(num_heads)} must have one entry per stage")
        self.img_size = to_2tuple(img_size)
        self.patch_size = patch_size
        self.window_size = to_2tuple(window_size)
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.num_stages = len(depths)
        check_swin_size(self.img_size, patch_size, self.window_size, self.num_stages, type(self).__name__)
        self.embed_dim = embed_dim
        self.num_features = embed_dim * 2 ** (self.num_stages - 1)

        self.patch_embed = embed_layer(self.img_size, patch_size, in_chans, embed_dim,
                                       norm_layer=partial(nn.LayerNorm, eps=norm_eps))
        self.pos_drop = nn.Dropout(drop_rate)
        # A Python list, not torch.linspace, which would live on the meta device under `torch.device("meta")`.
        total = sum(depths)
        dpr = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, resolution, dim = [], self.patch_embed.grid_size, embed_dim
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            out_dim = embed_dim * 2**i
            first = sum(depths[:i])
            stages.append(SwinStage(dim, out_dim, resolution, depth, heads, self.window_size, downsample=i > 0,
                                    mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate, attn_drop=attn_drop_rate,
                                    drop_path=dpr[first:first + depth], norm_eps=norm_eps, attn_layer=attn_layer))
            resolution, dim = stages[-1].output_resolution, out_dim
        self.layers = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(self.num_features, eps=norm_eps)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        self._init_weights()

    def _init_weights(self):
        init_linear_(self)

    def _check_input(self, x: torch.Tensor) -> None:
        who = type(self).__name__
        check_image(x, self.in_chans, who)
        size = tuple(x.shape[-2:])
        if size == self.img_size:
            return
        check_swin_size(size, self.patch_size, self.window_size, self.num_stages, who)
        raise ValueError(
            f"{who}: built for {self.img_size[0]}x{self.img_size[1]} images, got {size[0]}x{size[1]}; the "
            f"attention masks of the shifted windows are built for one size, so create the model with "
            f"img_size={size[0] if size[0] == size[1] else size}"
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        x = self.pos_drop(self.patch_embed(x))
        return self.norm(self.layers(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# Variants of the Swin paper (and timm). name -> (embed_dim, depths, num_heads, window, img).
_VARIANTS = {
    "swin_tiny_patch4_window7_224": (96, (2, 2, 6, 2), (3, 6, 12, 24), 7, 224),
    "swin_small_patch4_window7_224": (96, (2, 2, 18, 2), (3, 6, 12, 24), 7, 224),
    "swin_base_patch4_window7_224": (128, (2, 2, 18, 2), (4, 8, 16, 32), 7, 224),
    "swin_base_patch4_window12_384": (128, (2, 2, 18, 2), (4, 8, 16, 32), 12, 384),
    "swin_large_patch4_window7_224": (192, (2, 2, 18, 2), (6, 12, 24, 48), 7, 224),
    "swin_large_patch4_window12_384": (192, (2, 2, 18, 2), (6, 12, 24, 48), 12, 384),
}


register_variants(globals(), SwinTransformer, _VARIANTS, ("embed_dim", "depths", "num_heads", "window_size", "img_size"),
                  "Swin: patch 4, width {embed_dim}, depths {depths}, heads {num_heads}, window {window_size}, "
                  "{img_size}x{img_size} input.", patch_size=4)
