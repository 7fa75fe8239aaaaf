from __future__ import annotations


def to_2tuple(x: int | tuple[int, int]) -> tuple[int, int]:
    """``7 -> (7, 7)``; a pair is returned as a tuple."""
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(f"expected an int or a pair, got {x!r}")
        return int(x[0]), int(x[1])
    return int(x), int(x)


def init_linear_(module, std: float = 0.02) -> None:
    """The ViT-family initialisation of every ``nn.Linear`` inside ``module``: weights truncated
    normal with standard deviation ``std``, biases zero (timm's and the papers' choice)."""
    import torch.nn as nn

    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
