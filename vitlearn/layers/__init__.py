"""Building blocks shared by the models."""
from .attention import Attention, AttentionModule, attend
from .checks import check_divisible, check_image
from .drop_path import DropPath, drop_path
from .helpers import to_2tuple
from .mlp import Mlp
from .patch_embed import PatchEmbed

__all__ = [
    "Attention", "AttentionModule", "attend", "check_divisible", "check_image", "DropPath",
    "drop_path", "to_2tuple", "Mlp", "PatchEmbed",
]
