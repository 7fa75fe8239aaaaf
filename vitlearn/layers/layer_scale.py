"""LayerScale (Touvron et al., CaiT, 2021): a learned per-channel scale on a residual branch.

A block computes x + diag(γ) · f(x) instead of x + f(x); γ starts at a small ε, so every block
starts close to the identity, which the CaiT paper reports lets much deeper ViTs train. Any block of
any model can switch it on (ViT, CaiT, UniFormer's ``_ls`` variants).
"""
from __future__ import annotations

import torch
import torch.nn as nn


class LayerScale(nn.Module):
    """Multiplies its input by a learned per-channel vector ``gamma`` initialised to ``init_values``.

    ``channel_dim`` says where the channels are: -1 for tokens (B, N, C) (the default), 1 for
    channels-first maps (B, C, H, W) or (B, C, T, H, W).

    Shapes: (..., C) -> (..., C) with ``channel_dim=-1``; ``(B, C, *spatial)`` -> same with ``channel_dim=1``.
    ``gamma`` has shape (C,) either way, so checkpoints do not depend on the layout.
    """

    def __init__(self, dim: int, init_values: float = 1e-5, channel_dim: int = -1):
        super().__init__()
        if channel_dim not in (-1, 1):
            raise ValueError(f"LayerScale: channel_dim must be -1 (channels last) or 1 (channels first), got {channel_dim}")
        self.channel_dim = channel_dim
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_dim == -1:
            return x * self.gamma
        return x * self.gamma.view(-1, *([1] * (x.ndim - 2)))

    def extra_repr(self) -> str:
        return f"dim={self.gamma.numel()}, channel_dim={self.channel_dim}"
