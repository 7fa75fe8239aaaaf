"""timm SwinTransformer -> vitlearn SwinTransformer (the state-dict layouts coincide)."""
from __future__ import annotations

import torch.nn as nn

from ..layers.helpers import to_2tuple
from ..models.swin import SwinTransformer
from .common import load_exact, require


def swin_from_timm(tm: nn.Module) -> SwinTransformer:
    stages = list(tm.layers)
    blocks = [blk for stage in stages for blk in stage.blocks]
    first = blocks[0]
    embed_dim = tm.patch_embed.proj.out_channels
    dims = [stage.blocks[0].norm1.normalized_shape[0] for stage in stages]
    require(dims == [embed_dim * 2**i for i in range(len(stages))], f"stage widths {dims} other than doubling")
    require(not getattr(tm, "dynamic_img_size", False), "dynamic_img_size (masks built per forward)")
    require(not any(getattr(b, "always_partition", False) for b in blocks), "always_partition")
    require(tm.global_pool == "avg", f"global_pool={tm.global_pool!r}")
    patch = to_2tuple(tm.patch_embed.patch_size)
    require(patch[0] == patch[1], f"a non-square patch {patch}")
    require(all(type(n) is nn.LayerNorm for n in [tm.norm, tm.patch_embed.norm]
                + [m for b in blocks for m in (b.norm1, b.norm2)]), "a norm other than LayerNorm")
    require(all(type(b.mlp.act) is nn.GELU and b.mlp.act.approximate == "none" for b in blocks),
            "an activation other than GELU")
    require(all(b.attn.qkv.out_features == 3 * b.norm1.normalized_shape[0] for b in blocks), "head_dim")
    ratios = {b.mlp.fc1.out_features / b.norm1.normalized_shape[0] for b in blocks}
    require(len(ratios) == 1, "different MLP ratios per stage")
    qkv_bias = {b.attn.qkv.bias is not None for b in blocks}
    require(len(qkv_bias) == 1, "qkv bias in some blocks only")
    # timm keeps each stage's window before it is fitted to small maps; fall back to the largest in use.
    windows = set(getattr(tm, "_ref_window_sizes", None) or [tuple(max(b.window_size for b in blocks))])
    require(len(windows) == 1, f"different windows per stage {sorted(windows)}")

    model = SwinTransformer(
        img_size=tuple(tm.patch_embed.img_size),
        patch_size=patch[0],
        in_chans=tm.patch_embed.proj.in_channels,
        num_classes=tm.num_classes,
        embed_dim=embed_dim,
        depths=tuple(len(stage.blocks) for stage in stages),
        num_heads=tuple(stage.blocks[0].attn.num_heads for stage in stages),
        window_size=windows.pop(),
        mlp_ratio=ratios.pop(),
        qkv_bias=qkv_bias.pop(),
        norm_eps=tm.norm.eps,
    )
    ours = [blk for stage in model.layers for blk in stage.blocks]
    require(all((tuple(a.window_size), tuple(a.shift_size)) == (tuple(b.window_size), tuple(b.shift_size))
                for a, b in zip(ours, blocks)), "a window or shift placement vitlearn does not reproduce")
    # The index and mask buffers are non-persistent in timm; they are rebuilt here, so skip them if present.
    return load_exact(model, tm.state_dict(), skip=("relative_position_index", "attn_mask"))
