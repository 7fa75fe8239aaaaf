"""Model families; importing this module registers every variant."""
from . import swin, vit, vit_lsla  # noqa: F401
from .swin import SwinTransformer
from .vit import VisionTransformer
from .vit_lsla import ViTLSLA

__all__ = ["SwinTransformer", "VisionTransformer", "ViTLSLA"]
