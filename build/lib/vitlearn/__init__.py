"""vitlearn: vision-transformer mechanisms, derived and implemented.

>>> import vitlearn
>>> model = vitlearn.create_model("vit_tiny_patch16_224", num_classes=10)
>>> vitlearn.count_parameters(model) > 0
True
"""
from . import layers, models  # noqa: F401  (registers the model variants)
from .attention_maps import explicit_attention, record_attention
from .convert import from_timm
from .counting import count_macs, count_parameters
from .registry import create_model, list_models, register_model
from .utils import get_device, seed_everything

__version__ = "0.1.0"

__all__ = [
    "create_model", "list_models", "register_model", "count_parameters", "count_macs", "from_timm",
    "record_attention", "explicit_attention", "get_device", "seed_everything", "__version__",
]
