"""Model families; importing this module registers every variant."""
from . import swin, vit  # noqa: F401
from .swin import SwinTransformer
from .vit import VisionTransformer

__all__ = ["SwinTransformer", "VisionTransformer"]
