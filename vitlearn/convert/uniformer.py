"""Image UniFormer weights -> video UniFormer weights, by inflating every 2D kernel along time.

The official video code initialises from ImageNet checkpoints this way (``inflate_weight`` with
``center=False``): a k_h×k_w kernel becomes k_t×k_h×k_w by repeating it k_t times and dividing by k_t,
where k_t is the temporal size of the video model's conv (3 for the stem and the DPE, 5 for the
local MHRA, 1 elsewhere). On a clip whose frames are all the same image, a conv inflated so
reproduces the 2D conv at every temporal position whose window lies inside the clip; at the ends
the zero padding removes part of the sum (tests/test_uniformer.py checks both).
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn


def inflate_2d_to_3d(image_state_dict: Mapping[str, torch.Tensor],
                     target: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict of an image UniFormer, made loadable into the video UniFormer ``target``.

    ``target`` is the video model (or its state dict); its shapes decide each kernel's temporal
    size k_t. A conv weight (C_out, C_in, k_h, k_w) becomes (C_out, C_in, k_t, k_h, k_w), each
    temporal slice equal to weight / k_t; everything of the same shape (norms, attention, biases)
    is copied. As in the official code, a classifier of another size (``head.*``, e.g. 1000 -> 400
    classes) is left out: load the result with ``strict=False`` and train the new head. Any other
    mismatch (a key the video model lacks, such as LayerScale's ``gamma_1`` or ``aux_head``, or a
    shape that no inflation explains) raises ``ValueError``.

    Example::

        video = vitlearn.create_model("uniformer_small_video", num_classes=400)
        missing = video.load_state_dict(inflate_2d_to_3d(image.state_dict(), video), strict=False).missing_keys
        # missing == ["head.weight", "head.bias"]
    """
    shapes = {k: tuple(v.shape) for k, v in (target.state_dict() if isinstance(target, nn.Module) else target).items()}
    out, unknown, bad = {}, [], []
    for key, value in image_state_dict.items():
        if key not in shapes:
            unknown.append(key)
            continue
        want = shapes[key]
        if tuple(value.shape) == want:
            out[key] = value.clone()
        elif value.ndim == 4 and len(want) == 5 and want[:2] + want[3:] == tuple(value.shape):
            k_t = want[2]
            out[key] = value.unsqueeze(2).repeat(1, 1, k_t, 1, 1) / k_t
        elif key.startswith("head."):
            continue
        else:
            bad.append(f"{key} {tuple(value.shape)} -> {want}")
    if unknown or bad:
        raise ValueError(f"inflate_2d_to_3d: keys the video model lacks {unknown[:5]}, shapes no inflation explains {bad[:5]}")
    return out
