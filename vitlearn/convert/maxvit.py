"""timm MaxxVit (the ``maxvit_*_tf_*`` ports) -> vitlearn MaxViT.

The layouts coincide except the relative position tables: timm keeps each as (heads, 2P−1, 2P−1)
at ``attn.rel_pos.relative_position_bias_table``, indexed [key row − query row, key col − query col];
vitlearn's :class:`~vitlearn.layers.PartitionAttention` keeps ((2P−1)², heads) at
``attn.relative_position_bias_table`` with a key − query index, so the table is only flattened and
transposed (a Swin-style query − key index would also need a flip of both offset axes).
"""
from __future__ import annotations

import torch.nn as nn
from einops import rearrange

from ..models.maxvit import MaxViT
from .common import load_exact, require

_TABLE = "attn.rel_pos.relative_position_bias_table"


def maxvit_from_timm(tm: nn.Module) -> MaxViT:
    blocks = [b for stage in tm.stages for b in stage.blocks]
    require(all(type(b).__name__ == "MaxxVitBlock" for b in blocks), "blocks other than MaxViT's (CoAtNet/MaxxViT)")
    require(all(type(b.conv).__name__ == "MbConvBlock" for b in blocks), "a ConvNeXt block in place of MBConv")
    require(all(b.attn_block is not None and not b.nchw_attn for b in blocks), "grid-only or NCHW attention")
    units = [u for b in blocks for u in (b.attn_block, b.attn_grid)]
    require(all(type(u.attn.rel_pos).__name__ == "RelPosBiasTf" for u in units), "a relative position other than TF's bias")
    require(all(not u.attn.head_first for u in units), "a head-first (interleaved) qkv layout")
    require(all(isinstance(u.ls1, nn.Identity) for u in units), "LayerScale")
    require(type(tm.head).__name__ == "NormMlpClassifierHead" and tm.global_pool == "avg", "a head other than norm-MLP")
    act = type(units[0].mlp.act).__name__
    require(act in ("GELUTanh", "GELU"), f"an activation {act}")
    require(type(tm.stem.conv1).__name__ == "Conv2dSame", "a stem without TF 'same' padding")

    first = blocks[0]
    heads = units[0].attn.num_heads
    head_dim = units[0].attn.dim_head
    model = MaxViT(
        img_size=tuple(tm.img_size),
        in_chans=tm.in_chans,
        num_classes=tm.num_classes,
        stem_width=tm.stem.out_chs,
        dims=tuple(stage.blocks[0].conv.conv3_1x1.out_channels for stage in tm.stages),
        depths=tuple(len(stage.blocks) for stage in tm.stages),
        head_dim=head_dim,
        window_size=tuple(first.attn_block.partition_size),
        grid_size=tuple(first.attn_grid.partition_size),
        mlp_ratio=units[0].mlp.fc1.out_features / units[0].mlp.fc1.in_features,
        expand_ratio=first.conv.conv1_1x1.out_channels / first.conv.conv3_1x1.out_channels,
        se_ratio=first.conv.se.fc1.out_channels / first.conv.conv3_1x1.out_channels,
        head_hidden_size=tm.head.pre_logits.fc.out_features,
        bn_eps=first.conv.norm1.eps,
        norm_eps=units[0].norm1.eps,
        tf_padding=True,
        gelu_approximate="tanh" if act == "GELUTanh" else "none",
    )
    require(heads == model.stages[0].blocks[0].attn_block.attn.num_heads, "a head count other than width / head_dim")
    state = {}
    for key, value in tm.state_dict().items():
        if key.endswith(("height_lookup", "width_lookup")):
            continue
        if key.endswith(_TABLE):
            key, value = key.replace(_TABLE, "attn.relative_position_bias_table"), rearrange(value, "h a b -> (a b) h")
        state[key] = value
    return load_exact(model, state)
