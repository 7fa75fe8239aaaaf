"""Class attention (CaiT): only the class token queries; the patches are keys and values.

In CaiT the patches are processed by self-attention alone; the class token enters afterwards and,
in a few class-attention blocks, gathers what it needs from the (frozen) patch tokens. A query of
one token makes the cost linear in the number of patches, N, instead of quadratic.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from .attention import AttentionModule, attend
from .drop_path import DropPath
from .layer_scale import LayerScale
from .mlp import Mlp


class ClassAttention(AttentionModule):
    """Attention from the first token (the class token) to all tokens.

    q = W_q z_0, k = W_k z, v = W_v z with separate linear maps (CaiT's ``q``, ``k``, ``v``) for
    z = [cls, patches]; softmax(q kᵀ / √d) v per head, then ``proj``.

    Shapes: z (B, 1 + N, dim) -> (B, 1, dim), the class token's update.
    :func:`vitlearn.record_attention` records (B, heads, 1, 1 + N).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"ClassAttention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        heads = lambda t: rearrange(t, "b n (h d) -> b h n d", h=self.num_heads)  # noqa: E731
        q, k, v = heads(self.q(z[:, :1])), heads(self.k(z)), heads(self.v(z))
        out = attend(q, k, v, scale=self.scale, module=self, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)")))


class ClassAttentionBlock(nn.Module):
    """CaiT's class-attention block: updates the class token only; the patches pass unchanged.

    z = [cls, patches]; cls ← cls + DropPath(γ₁ ⊙ CA(LN(z))); cls ← cls + DropPath(γ₂ ⊙ MLP(LN(cls))).

    Shapes: patches (B, N, dim), cls (B, 1, dim) -> cls (B, 1, dim).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0, init_values: float = 1e-5,
                 norm_eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = ClassAttention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.ls1 = LayerScale(dim, init_values)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.ls2 = LayerScale(dim, init_values)

    def forward(self, patches: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        z = torch.cat([cls, patches], dim=1)
        cls = cls + self.drop_path(self.ls1(self.attn(self.norm1(z))))
        return cls + self.drop_path(self.ls2(self.mlp(self.norm2(cls))))
