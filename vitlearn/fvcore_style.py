"""MAC counts in the convention of fvcore, the counter behind many papers' "FLOPs".

:func:`vitlearn.count_macs` counts the products of matrix multiplications and convolutions only.
fvcore's ``FlopCountAnalysis`` (used, for example, by the UniFormer code) also charges every norm
layer: 5 operations per element for LayerNorm and GroupNorm with affine parameters, 2 per element
for BatchNorm in eval mode. Adding those charges to ``count_macs`` reproduces fvcore's totals for
the UniFormer variants to the digits their papers report (chapter 5). Works on the ``meta`` device.
"""
from __future__ import annotations

import torch.nn as nn

from .counting import count_macs

_BATCH_NORM = nn.modules.batchnorm._BatchNorm


def norm_charges(model: nn.Module, input_size: tuple[int, ...] = (3, 224, 224), *, batch_size: int = 1) -> int:
    """fvcore's charge for the norm layers of one forward pass, per example: 5 per input element of
    every affine LayerNorm/GroupNorm (4 without affine parameters), 2 per element of every BatchNorm
    (1 without), counted in eval mode."""
    charges: list[int] = []

    def charge(mod: nn.Module, inputs, output) -> None:
        affine = getattr(mod, "elementwise_affine", getattr(mod, "affine", True))
        per = (5 if affine else 4) if isinstance(mod, (nn.LayerNorm, nn.GroupNorm)) else (2 if affine else 1)
        charges.append(per * inputs[0].numel())

    norms = [m for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.GroupNorm, _BATCH_NORM))]
    hooks = [m.register_forward_hook(charge) for m in norms]
    try:
        count_macs(model, input_size, batch_size=batch_size)
    finally:
        for h in hooks:
            h.remove()
    return sum(charges) // batch_size


def count_macs_fvcore_style(model: nn.Module, input_size: tuple[int, ...] = (3, 224, 224), *,
                            batch_size: int = 1) -> int:
    """``count_macs`` plus :func:`norm_charges`: the multiply-accumulates fvcore reports."""
    return count_macs(model, input_size, batch_size=batch_size) + norm_charges(model, input_size, batch_size=batch_size)
