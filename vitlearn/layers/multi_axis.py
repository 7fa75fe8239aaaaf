"""Multi-axis attention (MaxViT): attention inside blocks (local) or inside grids (dilated, global).

A map (B, H, W, C) is partitioned either into contiguous P×P windows (:func:`block_partition`) or
into G×G groups of tokens spaced H/G apart (:func:`grid_partition`); attention with a relative
position bias runs inside each partition. Block attention mixes neighbours; grid attention mixes
tokens from all over the map, so one block step followed by one grid step connects every position
with every other when H, W ≤ P·G (a block covers P consecutive rows, the grid reaches every residue
modulo H/G when P ≥ H/G), at a cost linear in H·W. Otherwise it does not: MaxViT-T's first stage at
224 pixels (56 > 7·7) reaches only (7/8)² of the pairs after one pair of steps (chapter 8).
"""
from __future__ import annotations

import torch
from einops import rearrange

from . import fused
from .attention import attend
from .window import PARTITION_LAYOUTS, WindowAttention, _check_tiles, relative_position_bias


class PartitionAttention(WindowAttention):
    """:class:`~vitlearn.layers.WindowAttention` over a block or grid partition of a channels-last map.

    ``partition`` is "block" (P×P windows, :func:`block_partition`) or "grid" (G×G dilated groups,
    :func:`grid_partition`), ``size`` is P or G; the relative position bias is indexed key − query by
    default (MaxViT's table convention), and a token's position is its position inside the partition
    (for a grid: steps of H/G pixels). :func:`vitlearn.record_attention` records
    (B · partitions, heads, size², size²).

    The qkv and output projections act per token, so they run on the map itself; the partition is
    taken in the same copy that splits the heads (and undone in the one that merges them), which
    gives the same result as partitioning first with one copy fewer each way. On the CPU the
    explicit softmax path is used: PyTorch's fused CPU kernel falls back to a slower reference
    implementation when there is an additive bias.

    Shapes: (B, H, W, dim) -> (B, H, W, dim); H and W multiples of ``size``.
    """

    def __init__(self, dim: int, num_heads: int, size: int | tuple[int, int], partition: str = "block",
                 qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0, fused: bool = True,
                 offset: str = "key-query"):
        if partition not in PARTITION_LAYOUTS:
            raise ValueError(f"PartitionAttention: partition must be one of {sorted(PARTITION_LAYOUTS)}, "
                             f"got {partition!r}")
        super().__init__(dim, num_heads, size, qkv_bias, attn_drop, proj_drop, fused, offset=offset)
        self.partition = partition

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``residual`` (B, H, W, dim), if given, is added to the output (in eval mode inside the
        output projection's kernel, see ``vitlearn.layers.fused``)."""
        B, H, W, _ = x.shape
        ph, pw = self.window
        _check_tiles(H, W, self.window, f"PartitionAttention ({self.partition})")
        layout = PARTITION_LAYOUTS[self.partition]
        q, k, v = rearrange(fused.linear(x, self.qkv.weight, self.qkv.bias), f"{layout} (three h d) -> three (b nh nw) h (ph pw) d",
                            three=3, h=self.num_heads, ph=ph, pw=pw)
        bias = relative_position_bias(self.relative_position_bias_table, self.relative_position_index)
        out = attend(q, k, v, scale=self.scale, bias=bias, dropout_p=self.attn_drop if self.training else 0.0,
                     module=self, fused=self.fused and x.device.type != "cpu")
        out = rearrange(out, f"(b nh nw) h (ph pw) d -> {layout} (h d)", b=B, nh=H // ph, nw=W // pw, ph=ph, pw=pw)
        if residual is not None and not self.training:  # proj_drop is the identity
            return fused.linear(out, self.proj.weight, self.proj.bias, residual=residual)
        out = self.proj_drop(self.proj(out))
        return out if residual is None else residual + out

    def extra_repr(self) -> str:
        return f"partition={self.partition!r}, size={self.window}, num_heads={self.num_heads}"
