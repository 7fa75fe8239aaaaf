"""Fixed 2-D sine-cosine position embeddings (as in MAE and "simple" ViTs)."""
from __future__ import annotations

import torch


def sincos_2d_position_embedding(grid: tuple[int, int], dim: int, temperature: float = 10000.0,
                                 device=None, dtype=torch.float32) -> torch.Tensor:
    """One embedding per grid cell, (gh·gw, dim), rows in row-major order.

    A quarter of the channels each hold sin(r·ω), cos(r·ω), sin(c·ω), cos(c·ω) for row r, column c
    and frequencies ω = temperature^(-k/(dim/4)), k = 0..dim/4-1.
    """
    if dim % 4:
        raise ValueError(f"sincos_2d_position_embedding: dim must be a multiple of 4, got {dim}")
    gh, gw = grid
    rows, cols = torch.meshgrid(torch.arange(gh, device=device), torch.arange(gw, device=device), indexing="ij")
    omega = temperature ** -(torch.arange(dim // 4, device=device) / (dim // 4))
    r = rows.flatten()[:, None] * omega[None]
    c = cols.flatten()[:, None] * omega[None]
    return torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], dim=1).to(dtype)
