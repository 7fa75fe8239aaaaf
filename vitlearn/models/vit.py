"""Vision Transformer (Dosovitskiy et al., 2021), with DeiT's Tiny and Small widths.

Image -> patches -> linear embedding -> [class token] + position embedding -> L pre-norm
transformer blocks -> LayerNorm -> class token (or token mean) -> linear classifier.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import Attention, DropPath, LayerScale, Mlp, PatchEmbed
from ..layers.helpers import init_linear_
from ..registry import register_variants


class Block(nn.Module):
    """Pre-norm transformer block: x + γ₁ ⊙ MHSA(LN(x)), then x + γ₂ ⊙ MLP(LN(x)).

    γ₁, γ₂ are :class:`~vitlearn.layers.LayerScale` vectors when ``init_values`` is set (CaiT,
    DeiT III), else absent. ``attn_layer`` swaps the attention (CaiT: talking heads).
    Shapes: (B, N, D) -> (B, N, D).
    """

    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True, drop=0.0, attn_drop=0.0,
                 drop_path=0.0, norm_eps=1e-6, init_values=None, attn_layer=Attention):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = attn_layer(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.ls1 = LayerScale(dim, init_values) if init_values is not None else nn.Identity()
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.ls2 = LayerScale(dim, init_values) if init_values is not None else nn.Identity()
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class VisionTransformer(nn.Module):
    """ViT classifier.

    Args:
        img_size: input side (position embeddings are learned for this grid).
        patch_size, embed_dim, depth, num_heads, mlp_ratio: the architecture.
        global_pool: ``"token"`` classifies the class token, ``"avg"`` the mean of the patch tokens
            (then normalised, as in timm).
        class_token: prepend a learned class token.
        no_embed_class: position embeddings for the patches only, added before the class token is
            prepended (DeiT III); by default the class token has its own entry.
        init_values: if set, LayerScale on both residual branches of every block, initialised to it.
        drop_rate, attn_drop_rate, drop_path_rate: regularisation; drop path grows linearly with depth.

    Shapes: (B, in_chans, img_size, img_size) -> logits (B, num_classes);
    ``forward_features`` returns the tokens (B, 1 + N, embed_dim) ((B, N, embed_dim) without class token) with N = (img_size/patch_size)².
    """

    def __init__(self, img_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=768,
                 depth=12, num_heads=12, mlp_ratio=4.0, qkv_bias=True, class_token=True,
                 global_pool="token", drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.0, norm_eps=1e-6,
                 no_embed_class=False, init_values=None):
        super().__init__()
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        if global_pool == "token" and not class_token:
            raise ValueError("global_pool='token' needs class_token=True")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.embed_dim = self.num_features = embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.num_prefix_tokens = 1 if class_token else 0
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.no_embed_class = no_embed_class
        pos_tokens = self.patch_embed.num_patches + (0 if no_embed_class else self.num_prefix_tokens)
        self.pos_embed = nn.Parameter(torch.zeros(1, pos_tokens, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.Sequential(*[
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, dpr[i], norm_eps, init_values)
            for i in range(depth)
        ])
        # As in timm: token pooling normalises all tokens, mean pooling normalises the pooled vector.
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps) if global_pool == "token" else nn.Identity()
        self.fc_norm = nn.LayerNorm(embed_dim, eps=norm_eps) if global_pool == "avg" else nn.Identity()
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self):
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        init_linear_(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        if self.no_embed_class:
            x = x + self.pos_embed
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if not self.no_embed_class:
            x = x + self.pos_embed
        x = self.pos_drop(x)
        return self.norm(self.blocks(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x[:, 0] if self.global_pool == "token" else x[:, self.num_prefix_tokens:].mean(dim=1)
        x = self.head_drop(self.fc_norm(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# Variants: ViT paper (Base/Large/Huge), DeiT (Tiny/Small). name -> (patch, dim, depth, heads, img).
_VARIANTS = {
    "vit_tiny_patch16_224": (16, 192, 12, 3, 224),
    "vit_tiny_patch16_384": (16, 192, 12, 3, 384),
    "vit_small_patch16_224": (16, 384, 12, 6, 224),
    "vit_small_patch16_384": (16, 384, 12, 6, 384),
    "vit_small_patch32_224": (32, 384, 12, 6, 224),
    "vit_small_patch32_384": (32, 384, 12, 6, 384),
    "vit_base_patch16_224": (16, 768, 12, 12, 224),
    "vit_base_patch16_384": (16, 768, 12, 12, 384),
    "vit_base_patch32_224": (32, 768, 12, 12, 224),
    "vit_base_patch32_384": (32, 768, 12, 12, 384),
    "vit_large_patch16_224": (16, 1024, 24, 16, 224),
    "vit_large_patch16_384": (16, 1024, 24, 16, 384),
    "vit_large_patch32_384": (32, 1024, 24, 16, 384),
    "vit_huge_patch14_224": (14, 1280, 32, 16, 224),
}


register_variants(globals(), VisionTransformer, _VARIANTS, ("patch_size", "embed_dim", "depth", "num_heads", "img_size"),
                  "ViT: patch {patch_size}, width {embed_dim}, depth {depth}, {num_heads} heads, {img_size}x{img_size} input.")
