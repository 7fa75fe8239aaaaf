"""Light Self-Limited-Attention (LSLA), the attention of ViT-LSLA (Hechen, Huang & Zhao, arXiv 2210.17115).

There is no official code, and the paper's equations and Algorithm 1 were not available to us, so
this module is *a reading* of the paper's text. Every choice the text leaves open is an explicit
constructor option; the defaults are the reading described here.

LSLA = LSA + SLA, inside M×M windows as in Swin (same call signature as
:class:`~vitlearn.layers.window.WindowAttention`).

**LSA (light self-attention): K = X and V = X.** Only the query keeps a learned projection,
Q = X W_q + b_q. The paper's argument: the logits Q Kᵀ = X W_q W_kᵀ Xᵀ only ever see the product
W_q W_kᵀ, so one learned matrix suffices; and A V W_o = A X (W_v W_o), so W_v and the output
projection W_o collapse into one map. The paper says that either can be discarded and that it "chose
the first approach" (its symbols were not available to us); *our reading* is that the first approach
discards W_v and keeps the output projection (``proj``), which is what this module does.

*Heads, our reading.* The paper's text says nothing about heads. Here X is split channel-wise into h
chunks of d = D/h (D the token width, ``dim``), like the query: head i uses chunk i of X as both its
keys and its values. That is a choice, not a necessity: each head could instead take all D channels
of X as keys and values with a D-wide query (query map W_q W_kᵀ per head) and a (h·D)×D output map,
which folds every multi-head attention exactly but costs 2hD² + (h + 1)D parameters, no fewer than
the 4(D² + D) of multi-head attention from h = 2 on; the channel split costs 2(D² + D). Under the
channel split, a head's keys and values are confined to its own d channels, so for random weights
about sqrt(1 − 1/h) of a multi-head attention's per-head key and value maps (by norm) are out of
reach (chapter 3). ``k_is_x=False`` / ``v_is_x=False`` restore a learned K / V projection (a ``k`` /
``v`` Linear of D×D + D parameters).

**SLA, positional-information module.**

- *Dynamic scale (DS)* replaces the fixed 1/√d: a learned table per relative offset and head, with
  the structure of Swin's relative position bias ((2M−1)² entries per head), gathered into
  (heads, M², M²) and *multiplying* the logits Q Xᵀ element-wise. It is initialised to the constant
  1/√d, so that at initialisation the module is exactly the fixed-scale attention: the logits then
  have the variance the 1/√d argument aims for (≈1 for unit-variance inputs), and training starts
  from the well-understood model and learns position-dependent sharpening or flattening from there.
  An init of 1 would make the logits √d times larger and the softmax near one-hot at the start.
- *Inner position bias B_i*: Swin's relative position bias, added inside the softmax
  (``relative_position_bias_table``, trunc-normal std 0.02).

**SLA, limited-attention module: outer position bias B_o**, with the same relative-position
structure, applied *after* the softmax to "limit some large values of attention weights":
``outer_bias_mode="add"`` (default) gives A' = softmax(·) + B_o, with B_o initialised to 0;
``"mul"`` gives A' = softmax(·) ⊙ B_o, initialised to 1. Either way the module starts as plain
(DS, B_i) attention. The rows of A' need not sum to 1 (and, in add mode, A' may be negative): it is a
learned linear mixing of the window's tokens, no longer a convex combination.

The whole, per window and head, with Swin's shifted-window mask (−100 between regions) inside the
softmax and, by default, B_o restricted to pairs in the same region (B_o^R, see below)::

    Out = (softmax(DS ⊙ (Q Xᵀ) + B_i + mask) ⊕ B_o^R) · X,   then  W_o (``proj``)

**B_o and shifted windows.** The mask keeps tokens that the cyclic shift brought together from
opposite image edges (they are not neighbours) from exchanging information. An additive B_o would
reopen exactly that channel, with weights that do not depend on content. So, by default
(``outer_bias_across_regions=False``), B_o is replaced by the identity of its operation (0 for
"add", 1 for "mul") on pairs the mask separates (mask < 0): there A' stays the softmax's ≈0. For
"mul" this changes nothing of substance (≈0 · B_o ≈ 0); for "add" it is what keeps the mask a mask.
``outer_bias_across_regions=True`` applies B_o to every pair of the window regardless.

**Paths.** B_o acts after the softmax, so with ``outer_bias`` the weights are always formed
explicitly (``attend(post_softmax=...)``); with DS the scale is a tensor, which also takes the
explicit path. With both off, the fused SDPA kernel is used (float scale), as in WindowAttention.
A recorder (:func:`vitlearn.record_attention`) receives the *final* weights A', those that multiply X
(after B_o, before attention dropout), shaped (B · nW, heads, M², M²).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from .attention import AttentionModule, attend
from .helpers import to_2tuple
from .window import (
    WindowAttention, add_relative_position_bias, add_relative_position_table, relative_position_bias,
    repeat_over_images,
)

OUTER_BIAS_MODES = ("add", "mul")


class LightSelfLimitedAttention(AttentionModule):
    """Window attention with K = V = X, a dynamic scale, inner and outer relative position biases.

    See the module docstring for the reading of the paper each option implements.

    Args:
        dim, num_heads, window, attn_drop, proj_drop, fused: as in WindowAttention.
        qkv_bias: bias of the ``q`` projection (and of ``k`` / ``v`` when they are learned).
        k_is_x: keys are the input's channel chunk of each head (True, our channel-split reading) or a
            learned ``k`` Linear (False).
        v_is_x: values likewise (False: a learned ``v`` Linear).
        dynamic_scale: learned per-offset, per-head scale ``dynamic_scale_table`` multiplying the logits,
            initialised to 1/√d (False: the fixed 1/√d).
        inner_bias: Swin's ``relative_position_bias_table`` added to the logits (False: none).
        outer_bias: ``outer_bias_table`` applied to the weights after the softmax (False: none).
        outer_bias_mode: "add" (A + B_o, B_o starts at 0) or "mul" (A ⊙ B_o, B_o starts at 1).
        outer_bias_across_regions: apply B_o also to pairs the shifted-window mask separates (False:
            B_o is the identity of its operation there).

    Shapes: x (B · nW, N, dim) with N = Mh · Mw, mask (nW, N, N) or None -> (B · nW, N, dim).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window: int | tuple[int, int],
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        fused: bool = True,
        *,
        k_is_x: bool = True,
        v_is_x: bool = True,
        dynamic_scale: bool = True,
        inner_bias: bool = True,
        outer_bias: bool = True,
        outer_bias_mode: str = "add",
        outer_bias_across_regions: bool = False,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"LightSelfLimitedAttention: dim {dim} is not divisible by num_heads {num_heads}")
        if outer_bias_mode not in OUTER_BIAS_MODES:
            raise ValueError(f"LightSelfLimitedAttention: outer_bias_mode must be one of {OUTER_BIAS_MODES}, "
                             f"got {outer_bias_mode!r}")
        self.window = to_2tuple(window)
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.fused = fused
        self.k_is_x, self.v_is_x = k_is_x, v_is_x
        self.dynamic_scale, self.inner_bias, self.outer_bias = dynamic_scale, inner_bias, outer_bias
        self.outer_bias_mode = outer_bias_mode
        self.outer_bias_across_regions = outer_bias_across_regions

        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = None if k_is_x else nn.Linear(dim, dim, bias=qkv_bias)
        self.v = None if v_is_x else nn.Linear(dim, dim, bias=qkv_bias)
        # All tables share one relative_position_index buffer.
        if inner_bias:
            add_relative_position_bias(self, self.window, num_heads)
        if dynamic_scale:
            add_relative_position_table(self, "dynamic_scale_table", self.window, num_heads, fill=self.scale)
        if outer_bias:
            fill = 0.0 if outer_bias_mode == "add" else 1.0
            add_relative_position_table(self, "outer_bias_table", self.window, num_heads, fill=fill)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _gather(self, table: torch.Tensor) -> torch.Tensor:
        return relative_position_bias(table, self.relative_position_index)  # (heads, N, N)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        def heads(t: torch.Tensor) -> torch.Tensor:
            return rearrange(t, "b n (h d) -> b h n d", h=self.num_heads)

        q = heads(self.q(x))
        # Under autocast q is in the low-precision dtype while x is not; K = X and V = X follow q.
        x_kv = x.to(q.dtype)
        k = heads(self.k(x) if self.k is not None else x_kv)
        v = heads(self.v(x) if self.v is not None else x_kv)

        bias = self._gather(self.relative_position_bias_table) if self.inner_bias else None
        if mask is not None:
            masked = mask[:, None]  # (nW, 1, N, N)
            bias = repeat_over_images(masked if bias is None else bias[None] + masked, x.shape[0])
        scale = self._gather(self.dynamic_scale_table) if self.dynamic_scale else self.scale

        post_softmax = None
        if self.outer_bias:
            outer = self._gather(self.outer_bias_table)  # (heads, N, N)
            identity = 0.0 if self.outer_bias_mode == "add" else 1.0
            if mask is not None and not self.outer_bias_across_regions:
                outer = torch.where(mask[:, None] < 0, identity, outer[None])  # (nW, heads, N, N)
                outer = repeat_over_images(outer, x.shape[0])
            if self.outer_bias_mode == "add":
                def post_softmax(attn: torch.Tensor) -> torch.Tensor:
                    return attn + outer
            else:
                def post_softmax(attn: torch.Tensor) -> torch.Tensor:
                    return attn * outer

        dropout_p = self.attn_drop if self.training else 0.0
        out = attend(q, k, v, scale=scale, bias=bias, dropout_p=dropout_p, module=self, post_softmax=post_softmax)
        return self.proj_drop(self.proj(rearrange(out, "b h n d -> b n (h d)")))

    def extra_repr(self) -> str:
        return (f"window={self.window}, num_heads={self.num_heads}, k_is_x={self.k_is_x}, v_is_x={self.v_is_x}, "
                f"dynamic_scale={self.dynamic_scale}, inner_bias={self.inner_bias}, outer_bias={self.outer_bias}"
                + (f", outer_bias_mode={self.outer_bias_mode!r}" if self.outer_bias else ""))


def lsa_from_msa(attn: WindowAttention) -> LightSelfLimitedAttention:
    """The LSA (K = V = X, fixed scale, inner bias, no DS, no B_o) that computes exactly what the
    single-head window attention ``attn`` computes: the paper's folding argument, made concrete.

    Row-vector convention, s = 1/√D the MSA's scale (D = ``dim``, one head), s' the LSA's (the same for one head):

    - Logits: s (x W_q + b_q)(x_j W_k + b_k)ᵀ = x (s W_q W_kᵀ) x_jᵀ + (s b_q W_kᵀ) x_jᵀ + [terms that
      do not depend on the key j]. Terms constant along a softmax row cancel in the softmax (with
      the bias and mask too, which do not change along j by a constant), so the LSA's query map is
      q'(x) = x (s/s') W_q W_kᵀ + (s/s') b_q W_kᵀ.
    - Values: A (x W_v + b_v) W_o + b_o = A x (W_v W_o) + b_v W_o + b_o, since every row of A sums
      to 1; so the LSA's ``proj`` has weight W_v W_o and bias b_v W_o + b_o.

    In nn.Linear's (out, in) layout: q.weight = (s/s') W_k,linᵀ W_q,lin, q.bias = (s/s') b_q W_k,lin,
    proj.weight = W_o,lin W_v,lin, proj.bias = W_o,lin b_v + b_o. The relative position bias table
    becomes B_i. The equivalence is exact in eval mode; in training, attention dropout breaks the
    rows-sum-to-1 step (the folded b_v W_o is not dropped).

    Raises ValueError for more than one head: with K = V = X split channel-wise across heads (our
    reading, see the module docstring), head i of an LSA sees only its own channel slice of x as keys
    and values, while head i of an MSA sees all D channels through W_k and W_v, so a multi-head MSA is
    not representable in general by this module.
    """
    if attn.num_heads != 1:
        raise ValueError(
            f"lsa_from_msa: can only fold a single-head attention, got num_heads={attn.num_heads}. With K = V = X, "
            f"head i of an LSA sees only its own channel slice of x (d = C/h channels) as keys and values, while "
            f"each head of a multi-head MSA sees all C channels through W_k and W_v, so a multi-head MSA is not "
            f"representable in general; use LightSelfLimitedAttention(k_is_x=False, v_is_x=False) to keep them"
        )
    dim = attn.qkv.in_features
    has_bias = attn.qkv.bias is not None
    weight = attn.qkv.weight
    lsa = LightSelfLimitedAttention(
        dim, 1, attn.window, qkv_bias=has_bias, attn_drop=attn.attn_drop, proj_drop=attn.proj_drop.p,
        fused=attn.fused, dynamic_scale=False, inner_bias=True, outer_bias=False,
    ).to(device=weight.device, dtype=weight.dtype)
    ratio = attn.scale / lsa.scale
    with torch.no_grad():
        w_q, w_k, w_v = weight.chunk(3)  # (out, in) each
        lsa.q.weight.copy_(ratio * w_k.T @ w_q)
        lsa.proj.weight.copy_(attn.proj.weight @ w_v)
        proj_bias = attn.proj.bias.clone()
        if has_bias:
            b_q, _, b_v = attn.qkv.bias.chunk(3)  # b_k only shifts whole softmax rows: it cancels
            lsa.q.bias.copy_(ratio * b_q @ w_k)
            proj_bias += attn.proj.weight @ b_v
        lsa.proj.bias.copy_(proj_bias)
        lsa.relative_position_bias_table.copy_(attn.relative_position_bias_table)
    return lsa.train(attn.training)
