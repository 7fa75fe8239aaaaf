"""Model families; importing this module registers every variant."""
from . import cait, maxvit, swin, vit, vit_lsla  # noqa: F401
from .cait import CaiT
from .maxvit import MaxViT
from .swin import SwinTransformer
from .vit import VisionTransformer
from .vit_lsla import ViTLSLA

__all__ = ["CaiT", "MaxViT", "SwinTransformer", "VisionTransformer", "ViTLSLA"]
