"""Building blocks shared by the models."""
from . import fused  # noqa: F401
from .attention import Attention, AttentionModule, attend
from .class_attention import ClassAttention, ClassAttentionBlock
from .checks import check_divisible, check_image
from .drop_path import DropPath, drop_path
from .helpers import to_2tuple
from .layer_scale import LayerScale
from .mbconv import MBConv, PoolShortcut, SqueezeExcite
from .multi_axis import PartitionAttention
from .lsla import LightSelfLimitedAttention, lsa_from_msa
from .mlp import Mlp
from .patch_embed import PatchEmbed
from .pos_embed import sincos_2d_position_embedding
from .talking_heads import TalkingHeadsAttention, mix_heads
from .window import (
    PatchMerging, block_partition, block_reverse, grid_partition, grid_reverse, RelativePositionBias, WindowAttention, cyclic_shift, relative_position_index,
    reverse_cyclic_shift, shifted_window_mask, window_partition, window_reverse,
)

__all__ = [
    "Attention", "AttentionModule", "attend", "ClassAttention", "ClassAttentionBlock", "TalkingHeadsAttention", "mix_heads", "check_divisible", "check_image", "DropPath",
    "drop_path", "to_2tuple", "LayerScale", "LightSelfLimitedAttention", "lsa_from_msa", "Mlp", "PatchEmbed", "sincos_2d_position_embedding", "PatchMerging", "RelativePositionBias", "WindowAttention",
    "cyclic_shift", "relative_position_index", "reverse_cyclic_shift", "shifted_window_mask", "window_partition",
    "window_reverse", "block_partition", "block_reverse", "grid_partition", "grid_reverse", "MBConv", "PoolShortcut",
    "SqueezeExcite", "PartitionAttention",
]
