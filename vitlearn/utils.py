"""Small conveniences for notebooks and scripts."""
from __future__ import annotations

import random

import numpy as np
import torch


def get_device() -> torch.device:
    """The best available device: CUDA, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> None:
    """Seeds Python, NumPy and PyTorch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def randomize_(module: torch.nn.Module, std: float = 0.1, seed: int = 0) -> torch.nn.Module:
    """Overwrites every floating-point parameter and buffer with random values (for parity checks).

    Norm layers (LayerNorm, GroupNorm, BatchNorm) get weights 1 + N(0, std²), so activations keep
    their scale and reach GELU's non-linear range, and BatchNorm running variances are drawn from
    [0.5, 1.5) (they must stay positive); everything else (linear and conv weights, biases, tables,
    tokens, running means) is N(0, std²). Default inits (small std, zero biases, unit norm weights)
    hide mismatches such as tanh- vs erf-GELU or a swapped bias. Integer buffers and non-persistent
    buffers (masks and indices derived from the configuration) keep their values.
    """
    g = torch.Generator().manual_seed(seed)
    norms = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.batchnorm._NormBase)
    with torch.no_grad():
        for m in module.modules():
            # Non-persistent buffers (shifted-window masks, index tables) are derived from the
            # configuration, not state: they keep their values.
            buffers = [(n, b) for n, b in m.named_buffers(recurse=False) if n not in m._non_persistent_buffers_set]
            for name, t in list(m.named_parameters(recurse=False)) + buffers:
                if not t.is_floating_point():
                    continue
                noise = torch.randn(t.shape, generator=g) * std
                if isinstance(m, norms) and name == "weight":
                    t.copy_(1 + noise)
                elif name == "running_var":
                    t.copy_(0.5 + torch.rand(t.shape, generator=g))
                else:
                    t.copy_(noise)
    return module
