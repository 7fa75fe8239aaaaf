"""Scaled dot-product attention with a fused and an explicit path, and multi-head self-attention.

Every attention module in vitlearn derives from :class:`AttentionModule` and computes its weights
through :func:`attend`. That gives one way to read post-softmax attention maps from any model
(:func:`vitlearn.record_attention`): while a recorder is attached, ``attend`` takes the explicit
path, whose softmax it can see, instead of the fused kernel.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


class AttentionModule(nn.Module):
    """Base class of modules whose attention weights :func:`vitlearn.record_attention` can record.

    ``recorder`` is None except inside ``record_attention``; ``fused`` selects
    ``F.scaled_dot_product_attention`` (True) or the explicit softmax path (False).
    """

    fused: bool = True
    recorder: Callable[[torch.Tensor], None] | None = None


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float | torch.Tensor,
    bias: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    module: AttentionModule | None = None,
    post_softmax: Callable[[torch.Tensor], torch.Tensor] | None = None,
    pre_softmax: Callable[[torch.Tensor], torch.Tensor] | None = None,
    fused: bool | None = None,
) -> torch.Tensor:
    """post(softmax(pre(scale · q kᵀ + bias))) v, over the last two axes (pre and post are the identity by default).

    Shapes: q (..., Nq, d), k (..., Nk, d), v (..., Nk, dv), bias broadcastable to (..., Nq, Nk)
    -> (..., Nq, dv). ``scale`` is a float or a tensor broadcastable to the logits (a tensor
    multiplies q kᵀ element-wise, so it may differ per head, query and key).

    ``post_softmax`` maps the softmax weights (..., Nq, Nk) to the weights that multiply v (e.g.
    ViT-LSLA's outer position bias, CaiT's talking-heads mix); it is applied before attention dropout.
    ``pre_softmax`` maps the logits (..., Nq, Nk) before the softmax (CaiT's pre-softmax head mix).

    The fused kernel is used when ``module.fused`` is set, ``scale`` is a float, there is no
    ``pre_softmax`` or ``post_softmax`` and no recorder is attached; otherwise the weights are formed explicitly and the
    recorder receives the final ones, those that multiply v (after ``post_softmax``, before dropout).
    ``fused``, if given, overrides ``module.fused`` for this call.
    """
    recorder = module.recorder if module is not None else None
    if fused is None:
        fused = module.fused if module is not None else True
    plain = post_softmax is None and pre_softmax is None
    if fused and recorder is None and plain and not isinstance(scale, torch.Tensor):
        if bias is not None:
            bias = bias.to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
    if isinstance(scale, torch.Tensor):
        logits = (q @ k.transpose(-2, -1)) * scale
    else:
        logits = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        logits = logits + bias
    if pre_softmax is not None:
        logits = pre_softmax(logits)
    attn = logits.softmax(dim=-1)
    if post_softmax is not None:
        attn = post_softmax(attn)
    if recorder is not None:
        recorder(attn)
    if dropout_p > 0.0:
        attn = F.dropout(attn, p=dropout_p)
    return attn.to(v.dtype) @ v


class Attention(AttentionModule):
    """Multi-head self-attention, as in ViT.

    Q, K and V come from one ``qkv`` linear map whose output is laid out [q | k | v], each split into
    ``num_heads`` heads of ``dim // num_heads`` channels; the heads' outputs are concatenated and
    projected by ``proj``.

    Shapes: x (B, N, dim), optional ``attn_bias`` broadcastable to (B, heads, N, N) -> (B, N, dim).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        fused: bool = True,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.fused = fused
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        dropout_p = self.attn_drop if self.training else 0.0
        out = attend(q, k, v, scale=self.scale, bias=attn_bias, dropout_p=dropout_p, module=self)
        return self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)")))
