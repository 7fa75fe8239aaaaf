"""Model families; importing this module registers every variant."""
from . import cait, swin, uniformer, vit, vit_lsla  # noqa: F401
from .cait import CaiT
from .swin import SwinTransformer
from .uniformer import UniFormer
from .vit import VisionTransformer
from .vit_lsla import ViTLSLA

__all__ = ["CaiT", "SwinTransformer", "UniFormer", "VisionTransformer", "ViTLSLA"]
