"""Multi-axis attention (MaxViT): attention inside blocks (local) or inside grids (dilated, global).

A map (B, H, W, C) is partitioned either into contiguous P×P windows (:func:`block_partition`) or
into G×G groups of tokens spaced H/G apart (:func:`grid_partition`); attention with a relative
position bias runs inside each partition. Block attention mixes neighbours; grid attention mixes
tokens from all over the map, so one block step followed by one grid step connects every position
with every other at a cost linear in H·W.
"""
from __future__ import annotations

import torch

from .window import WindowAttention, block_partition, block_reverse, grid_partition, grid_reverse

PARTITIONS = {"block": (block_partition, block_reverse), "grid": (grid_partition, grid_reverse)}


class PartitionAttention(WindowAttention):
    """:class:`~vitlearn.layers.WindowAttention` over a block or grid partition of a channels-last map.

    ``partition`` is "block" (P×P windows) or "grid" (G×G dilated groups), ``size`` is P or G; the
    relative position bias is indexed key − query by default (MaxViT's table convention), and a
    position's offset is its position inside the partition (for a grid: steps of H/G pixels).
    :func:`vitlearn.record_attention` records (B · partitions, heads, size², size²).

    Shapes: (B, H, W, dim) -> (B, H, W, dim); H and W multiples of ``size``.
    """

    def __init__(self, dim: int, num_heads: int, size: int | tuple[int, int], partition: str = "block",
                 qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0, fused: bool = True,
                 offset: str = "key-query"):
        if partition not in PARTITIONS:
            raise ValueError(f"PartitionAttention: partition must be one of {sorted(PARTITIONS)}, got {partition!r}")
        super().__init__(dim, num_heads, size, qkv_bias, attn_drop, proj_drop, fused, offset=offset)
        self.partition = partition

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[1], x.shape[2]
        split, merge = PARTITIONS[self.partition]
        return merge(super().forward(split(x, self.window)), self.window, H, W)

    def extra_repr(self) -> str:
        return f"partition={self.partition!r}, size={self.window}, num_heads={self.num_heads}"
