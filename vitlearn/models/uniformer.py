"""UniFormer (Li et al., "UniFormer: Unifying Convolution and Self-attention for Visual Recognition",
TPAMI 2023, arXiv 2201.09450; video: "UniFormer: Unified Transformer for Efficient Spatiotemporal
Representation Learning", ICLR 2022, arXiv 2201.04676).

Image -> stem (stride 4) -> 2 stages of *local* blocks (a learned depthwise-conv affinity, like a
convolution) -> 2 stages of *global* blocks (self-attention over every token), each stage after a
stride-2 downsampling -> BatchNorm -> global average -> linear classifier. Every block first adds a
depthwise-conv position embedding (DPE). Local relations are cheap where maps are large and
redundant; global attention is paid for only on the 1/16 and 1/32 maps.

The same code builds the video models (``video=True``): every convolution becomes 3D, the stem
also halves time, and global attention runs jointly over all T·H·W tokens.

Module names follow the official code (Sense-X/UniFormer), so an official state dict loads with
``model.load_state_dict(sd)`` (strict). **head_dim is not stored in a checkpoint**: the ``qkv``
weight has shape (3C, C) for any number of heads, so a checkpoint trained with head_dim 32 (the
token-labeling S, S† and B, and the plain S†) loads silently into a head_dim-64 model, and the
reverse, and then computes something else. Pass the checkpoint's ``head_dim``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from ..layers.checks import check_divisible, check_image, check_video
from ..layers.helpers import init_linear_
from ..layers.uniformer import ConvBNEmbed, ConvPatchEmbed, GlobalMHRABlock, LocalMHRABlock
from ..registry import register_variants

STRIDE = 32  # 4 (stem) · 2 · 2 · 2: input sides must be multiples of it


class UniFormer(nn.Module):
    """UniFormer classifier for images or, with ``video=True``, clips.

    Args:
        depths, embed_dims: blocks and channels of the four stages (stages 1–2 local, 3–4 global).
        head_dim: channels per attention head in the global stages; heads = C / head_dim. 64 in the
            plain S, B, B+LS, L+LS and the video models; **32 in the plain S† and in the
            token-labeling checkpoints of S, S† and B** (a wrong value loads without error).
        conv_stem: S†'s overlapping 3×3 stride-2 conv + BatchNorm embeddings instead of
            non-overlapping patch convs + LayerNorm (images only).
        layer_scale: None, or the initial LayerScale value (1e-6 in the ``_ls`` models) of the
            global blocks' branches; ``local_layer_scale`` also puts it in the local blocks, as in
            the token-labeling code of ``uniformer_large_ls`` (the plain ``uniformer_base_ls`` has
            it in global blocks only).
        token_labeling: add ``aux_head``, a linear classifier of every final token, as in the
            token-labeling (TL) checkpoints. In eval mode the output is then
            head(mean of tokens) + 0.5 · max over tokens of aux_head(tokens); in train mode it is the
            pair (head logits (B, classes), per-token logits (B, N, classes)) for the token-labeling
            loss, as the official code returns (without its MixToken box, an augmentation).
        video: 3D convolutions and BatchNorm3d, a (3, 4, 4) stride-(2, 4, 4) stem and (1, 2, 2)
            downsampling, joint space-time attention.
        drop_rate: dropout after the stem and in the FFN and attention projections; attn_drop_rate:
            on attention weights; drop_path_rate: stochastic depth, linear from 0 over all blocks
            (the released runs use S 0.1, S† 0.1, B 0.3, L 0.4, video 0.1).

    Shapes: images (B, in_chans, H, W) with H, W multiples of 32 -> logits (B, num_classes);
    ``forward_features`` returns the normalised last map (B, C₄, H/32, W/32). Clips
    (B, in_chans, T, H, W), any T ≥ 1 (⌈T/2⌉ temporal positions after the stem) -> (B, num_classes);
    features (B, C₄, ⌈T/2⌉, H/32, W/32).
    """

    def __init__(self, depths=(3, 4, 8, 3), embed_dims=(64, 128, 320, 512), head_dim=64, mlp_ratio=4.0,
                 qkv_bias=True, in_chans=3, num_classes=1000, conv_stem=False, layer_scale=None,
                 local_layer_scale=False, token_labeling=False, video=False, drop_rate=0.0, attn_drop_rate=0.0,
                 drop_path_rate=0.0, img_size=224, num_frames=8):
        super().__init__()
        if len(depths) != 4 or len(embed_dims) != 4:
            raise ValueError(f"UniFormer: depths and embed_dims need 4 stages, got {depths} and {embed_dims}")
        for dim in embed_dims[2:]:
            if dim % head_dim:
                raise ValueError(f"UniFormer: global-stage width {dim} is not divisible by head_dim {head_dim}")
        if conv_stem and video:
            raise ValueError("UniFormer: conv_stem (S†) exists for images only")
        self.in_chans, self.num_classes, self.video = in_chans, num_classes, video
        self.embed_dims, self.head_dim = tuple(embed_dims), head_dim
        self.num_features = embed_dims[-1]
        # the input the released model was evaluated at (for counting and examples; not enforced)
        self.default_input_size = (in_chans, num_frames, img_size, img_size) if video else (in_chans, img_size, img_size)
        nd = 3 if video else 2
        dims = (in_chans, *embed_dims)
        for i in range(4):
            if conv_stem:
                embed = ConvBNEmbed(dims[i], dims[i + 1], stem=i == 0)
            elif video:
                k = ((3, 4, 4), (2, 4, 4), (1, 0, 0)) if i == 0 else ((1, 2, 2), (1, 2, 2), 0)
                embed = ConvPatchEmbed(dims[i], dims[i + 1], *k, spatial_dims=3)
            else:
                p = 4 if i == 0 else 2
                embed = ConvPatchEmbed(dims[i], dims[i + 1], p, p)
            self.add_module(f"patch_embed{i + 1}", embed)
        self.pos_drop = nn.Dropout(drop_rate)
        n = sum(depths)
        rates = [drop_path_rate * j / max(n - 1, 1) for j in range(n)]  # torch.linspace, without a tensor
        start = 0
        for i, (depth, dim) in enumerate(zip(depths, embed_dims)):
            dpr = rates[start:start + depth]
            start += depth
            if i < 2:
                ls = layer_scale if local_layer_scale else None
                blocks = [LocalMHRABlock(dim, mlp_ratio, drop_rate, r, ls, spatial_dims=nd) for r in dpr]
            else:
                blocks = [GlobalMHRABlock(dim, dim // head_dim, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, r,
                                          layer_scale, spatial_dims=nd) for r in dpr]
            self.add_module(f"blocks{i + 1}", nn.ModuleList(blocks))
        self.norm = nn.BatchNorm3d(embed_dims[-1]) if video else nn.BatchNorm2d(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.aux_head = None
        if token_labeling:
            self.aux_head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        init_linear_(self)

    def stages(self):
        """The four (embedding, blocks) pairs, in order."""
        return [(getattr(self, f"patch_embed{i}"), getattr(self, f"blocks{i}")) for i in range(1, 5)]

    def _check_input(self, x: torch.Tensor) -> None:
        who = type(self).__name__
        if self.video:
            check_video(x, self.in_chans, who)
        else:
            check_image(x, self.in_chans, who)
        check_divisible(tuple(x.shape[-2:]), STRIDE, "total stride (4 · 2 · 2 · 2)", who)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, [T,] H, W) -> the BatchNorm-ed last map (B, C₄, [⌈T/2⌉,] H/32, W/32)."""
        self._check_input(x)
        for i, (embed, blocks) in enumerate(self.stages()):
            x = embed(x)
            if i == 0:
                x = self.pos_drop(x)
            for blk in blocks:
                x = blk(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False):
        """Map (B, C₄, *spatial) -> logits (B, classes); pooled features (B, C₄) with ``pre_logits``.
        Token-labeling models in train mode return (logits, per-token logits (B, N, classes))."""
        tokens = rearrange(x, "b c ... -> b (...) c")
        pooled = tokens.mean(dim=1)
        if pre_logits:
            return pooled
        logits = self.head(pooled)
        if self.aux_head is None:
            return logits
        aux = self.aux_head(tokens)
        if self.training:
            return logits, aux
        return logits + 0.5 * aux.amax(dim=1)

    def forward(self, x: torch.Tensor):
        return self.forward_head(self.forward_features(x))


_IMAGE = (64, 128, 320, 512)
# name -> (depths, embed_dims, head_dim, conv_stem, layer_scale, local_layer_scale, token_labeling, video, classes)
_VARIANTS = {
    "uniformer_small": ((3, 4, 8, 3), _IMAGE, 64, False, None, False, False, False, 1000),
    "uniformer_small_plus": ((3, 5, 9, 3), _IMAGE, 32, True, None, False, False, False, 1000),
    "uniformer_base": ((5, 8, 20, 7), _IMAGE, 64, False, None, False, False, False, 1000),
    "uniformer_base_ls": ((5, 8, 20, 7), _IMAGE, 64, False, 1e-6, False, False, False, 1000),
    # released only as a token-labeling model: LayerScale in local blocks too, and the aux head
    "uniformer_large_ls": ((5, 10, 24, 7), (128, 192, 448, 640), 64, False, 1e-6, True, True, False, 1000),
    "uniformer_small_video": ((3, 4, 8, 3), _IMAGE, 64, False, None, False, False, True, 400),
    "uniformer_base_video": ((5, 8, 20, 7), _IMAGE, 64, False, None, False, False, True, 400),
}

register_variants(globals(), UniFormer, _VARIANTS,
                  ("depths", "embed_dims", "head_dim", "conv_stem", "layer_scale", "local_layer_scale",
                   "token_labeling", "video", "num_classes"),
                  "UniFormer: depths {depths}, widths {embed_dims}, head_dim {head_dim} (check your checkpoint's), "
                  "conv stem {conv_stem}, LayerScale {layer_scale} (local blocks too: {local_layer_scale}), "
                  "token-labeling aux head {token_labeling}, video {video}, {num_classes} classes.")
