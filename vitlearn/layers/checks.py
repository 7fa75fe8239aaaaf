"""Input checks that fail early with a message naming the violated constraint."""
from __future__ import annotations

import torch


def _check_batch(x: torch.Tensor, in_chans: int, who: str, kind: str, axes: str) -> None:
    """Checks that ``x`` is a floating-point tensor shaped (B, in_chans, *axes) (``axes`` e.g. "H, W")."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} expects a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{who} expects a floating-point {kind} tensor, got dtype {x.dtype}; "
            "convert it first, e.g. x.float() / 255"
        )
    if x.ndim != 2 + len(axes.split(", ")):
        raise ValueError(f"{who} expects {kind}s shaped (B, C, {axes}), got shape {tuple(x.shape)}")
    if x.shape[1] != in_chans:
        raise ValueError(
            f"{who} expects {in_chans} input channels, got {x.shape[1]} (shape {tuple(x.shape)}); "
            f"{kind}s must be (B, {in_chans}, {axes})"
        )


def check_image(x: torch.Tensor, in_chans: int, who: str) -> None:
    """Checks that ``x`` is a floating-point batch of images shaped (B, in_chans, H, W)."""
    _check_batch(x, in_chans, who, "image", "H, W")


def check_video(x: torch.Tensor, in_chans: int, who: str) -> None:
    """Checks that ``x`` is a floating-point batch of clips shaped (B, in_chans, T, H, W), T >= 1."""
    _check_batch(x, in_chans, who, "clip", "T, H, W")
    if x.shape[2] < 1:
        raise ValueError(f"{who} expects at least 1 frame (T >= 1), got shape {tuple(x.shape)}")


def check_divisible(size: tuple[int, int], by: int, what: str, who: str) -> None:
    """Checks that both sides of ``size`` are multiples of ``by``."""
    h, w = size
    if h % by or w % by:
        ok_h, ok_w = (h // by) * by or by, (w // by) * by or by
        raise ValueError(
            f"{who}: image size {h}x{w} is not divisible by the {what} {by}; "
            f"use a multiple of {by}, e.g. {ok_h}x{ok_w}"
        )


def check_image_size(size: tuple[int, int], expected: tuple[int, int], who: str, why: str = "") -> None:
    """Checks that an input of spatial ``size`` has the size the model was built for."""
    if tuple(size) != tuple(expected):
        suggestion = size[0] if size[0] == size[1] else tuple(size)
        raise ValueError(
            f"{who}: expects {expected[0]}x{expected[1]} images, got {size[0]}x{size[1]}; "
            f"{why}create the model with img_size={suggestion}"
        )
