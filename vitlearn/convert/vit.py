"""timm VisionTransformer -> vitlearn VisionTransformer (the state-dict layouts coincide)."""
from __future__ import annotations

import torch.nn as nn

from ..models.vit import VisionTransformer
from .common import load_exact, require


def vit_from_timm(tm: nn.Module) -> VisionTransformer:
    blk = tm.blocks[0]
    require(getattr(tm, "num_reg_tokens", 0) == 0, "register tokens")
    require(not getattr(tm, "dynamic_img_size", False), "dynamic_img_size")
    layer_scale = not isinstance(blk.ls1, nn.Identity)
    require(isinstance(blk.attn.q_norm, nn.Identity), "qk_norm")
    require(isinstance(tm.norm_pre, nn.Identity), "pre-norm (norm_pre)")
    require(tm.global_pool in ("token", "avg"), f"global_pool={tm.global_pool!r}")
    require(type(blk.mlp.act) is nn.GELU and blk.mlp.act.approximate == "none", "an activation other than GELU")
    norm = tm.norm if isinstance(tm.norm, nn.LayerNorm) else tm.fc_norm
    require(isinstance(norm, nn.LayerNorm), "a final norm other than LayerNorm")
    model = VisionTransformer(
        img_size=tuple(tm.patch_embed.img_size),
        patch_size=tm.patch_embed.patch_size[0],
        in_chans=tm.patch_embed.proj.in_channels,
        num_classes=tm.num_classes,
        embed_dim=tm.embed_dim,
        depth=len(tm.blocks),
        num_heads=blk.attn.num_heads,
        mlp_ratio=blk.mlp.fc1.out_features / tm.embed_dim,
        qkv_bias=blk.attn.qkv.bias is not None,
        class_token=tm.cls_token is not None,
        global_pool=tm.global_pool,
        norm_eps=norm.eps,
        no_embed_class=getattr(tm, "no_embed_class", False),
        init_values=getattr(blk.ls1, "init_values", 1e-5) if layer_scale else None,
    )
    return load_exact(model, tm.state_dict())
