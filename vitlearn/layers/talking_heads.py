"""Talking-heads attention (Shazeer et al., 2020), as CaiT uses it in its self-attention blocks.

Ordinary multi-head attention keeps the heads apart until the output projection. Talking heads
mixes them twice: the h heads' logits are combined linearly (with a bias) before the softmax, and the
softmax weights are combined again after it. The second mix is a general linear map of weights, so a
row of the final weights no longer sums to one.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from .attention import AttentionModule, attend


def mix_heads(x: torch.Tensor, mix: nn.Linear) -> torch.Tensor:
    """Applies a Linear(H, H) across the head axis: y[b, g] = Σ_h W[g, h] x[b, h] + bias[g].

    Shapes: x (B, H, Nq, Nk) -> (B, H, Nq, Nk). Written as one batched matrix product over the
    flattened (Nq · Nk) axis, so no permuted copy of the (B, H, Nq, Nk) tensor is made.
    """
    b, h, nq, nk = x.shape
    weight = mix.weight.to(x.dtype).expand(b, h, h)
    flat = x.reshape(b, h, nq * nk)
    if mix.bias is None:
        return torch.bmm(weight, flat).view(b, h, nq, nk)
    # One pass over the (B, H, Nq·Nk) tensor: the bias is the initial value of the product's output.
    # (torch.matmul with a 2-D left operand would transpose the large operand into a copy instead.)
    bias = mix.bias.to(x.dtype)[None, :, None].expand(b, h, nq * nk)
    return torch.baddbmm(bias, weight, flat).view(b, h, nq, nk)


class TalkingHeadsAttention(AttentionModule):
    """Multi-head self-attention whose heads exchange information before and after the softmax.

    A = mix_w(softmax(mix_l(scale · q kᵀ))), out = proj(concat_h(A_h v_h)), where ``proj_l`` (mix_l)
    and ``proj_w`` (mix_w) are Linear(H, H) layers with bias acting across heads (CaiT's names).

    Shapes: x (B, N, dim) -> (B, N, dim). :func:`vitlearn.record_attention` records the final
    weights (B, H, N, N), after the second mix.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"TalkingHeadsAttention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_l = nn.Linear(num_heads, num_heads)
        self.proj_w = nn.Linear(num_heads, num_heads)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        out = attend(
            q, k, v, scale=self.scale, module=self,
            dropout_p=self.attn_drop if self.training else 0.0,
            pre_softmax=lambda logits: mix_heads(logits, self.proj_l),
            post_softmax=lambda weights: mix_heads(weights, self.proj_w),
        )
        return self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)")))
