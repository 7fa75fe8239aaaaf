"""Conversion of timm models (and their pretrained weights) into vitlearn models."""
from __future__ import annotations

import torch.nn as nn

from .cait import cait_from_timm
from .maxvit import maxvit_from_timm
from .swin import swin_from_timm
from .vit import vit_from_timm

_CONVERTERS = {
    "VisionTransformer": vit_from_timm,
    "SwinTransformer": swin_from_timm,
    "Cait": cait_from_timm,
    "MaxxVit": maxvit_from_timm,
}


def from_timm(timm_model: nn.Module) -> nn.Module:
    """Returns the vitlearn model equivalent to ``timm_model``, with its weights and buffers converted.

    The result has the same configuration (classes, image size, widths, ...), device, dtype and
    train/eval mode, and computes the same function::

        tm = timm.create_model("vit_base_patch16_224", pretrained=True)   # downloads, optional
        model = vitlearn.from_timm(tm)
    """
    kind = type(timm_model).__name__
    if kind not in _CONVERTERS:
        raise NotImplementedError(
            f"from_timm: no converter for timm's {kind}; supported: {', '.join(sorted(_CONVERTERS))}"
        )
    param = next(timm_model.parameters())
    model = _CONVERTERS[kind](timm_model)
    return model.to(device=param.device, dtype=param.dtype).train(timm_model.training)
