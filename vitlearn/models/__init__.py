"""Model families; importing this module registers every variant."""
from . import vit  # noqa: F401
from .vit import VisionTransformer

__all__ = ["VisionTransformer"]
