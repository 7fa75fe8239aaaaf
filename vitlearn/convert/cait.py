"""timm Cait -> vitlearn CaiT. The layouts coincide except LayerScale: timm keeps γ as
``gamma_1`` / ``gamma_2`` on each block, vitlearn as ``ls1.gamma`` / ``ls2.gamma``."""
from __future__ import annotations

import re

import torch.nn as nn

from ..models.cait import CaiT
from .common import load_exact, require


def _rename(key: str) -> str:
    return re.sub(r"\.gamma_([12])$", r".ls\1.gamma", key)


def cait_from_timm(tm: nn.Module) -> CaiT:
    blk, ca = tm.blocks[0], tm.blocks_token_only[0]
    require(type(blk.attn).__name__ == "TalkingHeadAttn", "an attention other than talking heads")
    require(type(blk.mlp.act) is nn.GELU and blk.mlp.act.approximate == "none", "an activation other than GELU")
    require(tm.global_pool in ("token", "avg"), f"global_pool={tm.global_pool!r}")
    model = CaiT(
        img_size=tuple(tm.patch_embed.img_size),
        patch_size=tm.patch_embed.patch_size[0],
        in_chans=tm.patch_embed.proj.in_channels,
        num_classes=tm.num_classes,
        embed_dim=tm.embed_dim,
        depth=len(tm.blocks),
        num_heads=blk.attn.num_heads,
        mlp_ratio=blk.mlp.fc1.out_features / tm.embed_dim,
        qkv_bias=blk.attn.qkv.bias is not None,
        depth_token_only=len(tm.blocks_token_only),
        global_pool=tm.global_pool,
        norm_eps=tm.norm.eps,
    )
    require(ca.mlp.fc1.out_features == model.blocks_token_only[0].mlp.fc1.out_features,
            "a class-attention MLP ratio different from the self-attention one")
    return load_exact(model, tm.state_dict(), rename=_rename)
