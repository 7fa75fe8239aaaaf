"""CaiT (Touvron et al., "Going deeper with Image Transformers", 2021).

Image -> 16×16 patches -> + position embedding (patches only) -> ``depth`` self-attention blocks
with talking heads and LayerScale -> the class token enters -> 2 class-attention blocks (the class
token attends to the frozen patches) -> LayerNorm -> class token -> linear classifier.

Two ideas, separable: LayerScale (a per-channel γ on every residual branch, initialised small, so a
deep stack starts near the identity) and class attention (the class token is kept out of the
self-attention stage, which then only processes patches, and gathers its summary at the end).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import PatchEmbed
from ..layers.class_attention import ClassAttentionBlock
from ..layers.talking_heads import TalkingHeadsAttention
from ..layers.helpers import init_linear_
from ..registry import register_variants
from .vit import Block


class CaiT(nn.Module):
    """CaiT classifier.

    Args:
        img_size, patch_size, in_chans: input and patching (the position embedding is learned for
            one grid, so the model accepts only ``img_size``).
        embed_dim, depth, num_heads, mlp_ratio: the self-attention stage.
        depth_token_only: number of class-attention blocks (2 in every released model).
        init_values: LayerScale initialisation ε for every block. The paper gives a rule by depth
            (0.1 up to 18 blocks, 1e-5 at 24, 1e-6 beyond); the released models fix one value per
            model (1e-5 for XXS24, XXS36, XS24, S24; 1e-6 for S36, M36, M48), which the variants use.
        drop_path_rate: the same rate in every self-attention block (not growing with depth); the
            class-attention blocks use none.
        global_pool: ``"token"`` (the class token, as released) or ``"avg"`` (mean of the patches).

    Shapes: (B, in_chans, H, W) -> logits (B, num_classes); ``forward_features`` returns
    (B, 1 + N, embed_dim), the class token followed by the N = (H/16)(W/16) patch tokens, normalised.
    """

    def __init__(self, img_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=192, depth=24,
                 num_heads=4, mlp_ratio=4.0, qkv_bias=True, depth_token_only=2, init_values=1e-5,
                 drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.0, global_pool="token", norm_eps=1e-6):
        super().__init__()
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.embed_dim = self.num_features = embed_dim
        self.num_prefix_tokens = 1
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.Sequential(*[
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, drop_path_rate,
                  norm_eps, init_values, attn_layer=TalkingHeadsAttention)
            for _ in range(depth)
        ])
        self.blocks_token_only = nn.ModuleList([
            ClassAttentionBlock(embed_dim, num_heads, mlp_ratio, qkv_bias, init_values=init_values, norm_eps=norm_eps)
            for _ in range(depth_token_only)
        ])
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self):
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        init_linear_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.blocks(self.pos_drop(self.patch_embed(x) + self.pos_embed))
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        for blk in self.blocks_token_only:  # every block sees the same, frozen patches
            cls = blk(patches, cls)
        return self.norm(torch.cat([cls, patches], dim=1))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x[:, 0] if self.global_pool == "token" else x[:, 1:].mean(dim=1)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# name -> (width, depth, heads, image size, LayerScale init of the released code); head dim 48 throughout.
_VARIANTS = {
    "cait_xxs24_224": (192, 24, 4, 224, 1e-5),
    "cait_xxs24_384": (192, 24, 4, 384, 1e-5),
    "cait_xxs36_224": (192, 36, 4, 224, 1e-5),
    "cait_xxs36_384": (192, 36, 4, 384, 1e-5),
    "cait_xs24_384": (288, 24, 6, 384, 1e-5),
    "cait_s24_224": (384, 24, 8, 224, 1e-5),
    "cait_s24_384": (384, 24, 8, 384, 1e-5),
    "cait_s36_384": (384, 36, 8, 384, 1e-6),
    "cait_m36_384": (768, 36, 16, 384, 1e-6),
    "cait_m48_448": (768, 48, 16, 448, 1e-6),
}


register_variants(globals(), CaiT, _VARIANTS, ("embed_dim", "depth", "num_heads", "img_size", "init_values"),
                  "CaiT: width {embed_dim}, {depth} self-attention + 2 class-attention blocks, {num_heads} heads, "
                  "{img_size}x{img_size} input.")
