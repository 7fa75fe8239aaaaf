"""Fused CPU inference kernels: a matrix product or convolution with its bias, activation or residual
add in one pass, with a plain PyTorch fallback that computes the same function.

On the CPU a GELU, a bias copy or a residual add is a full pass over a tensor in memory, and
MaxViT's widest tensors (the 4× expansions of MBConv and the FFN) are touched by all three. oneDNN,
which PyTorch's CPU build ships, applies them as post-operations of the matrix product or
convolution while the result is still in cache (these are the kernels ``torch.compile`` uses for
the same fusions). They are reached through ``torch.ops.mkldnn``, which has no autograd, so they
are used only for float32 CPU tensors with gradients off and outside autocast and compilation; in
every other case (training, GPU, bf16, ``meta``, ``torch.compile``) the fallback runs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_OPS = getattr(torch.ops, "mkldnn", None)
AVAILABLE = (torch.backends.mkldnn.is_available() and _OPS is not None
             and hasattr(_OPS, "_linear_pointwise") and hasattr(_OPS, "_convolution_pointwise"))


def use_onednn(x: torch.Tensor) -> bool:
    """Whether the fused kernels apply to ``x`` (float32 CPU inference, see the module docstring)."""
    return (AVAILABLE and x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling())


def _act(y: torch.Tensor, gelu: str | None) -> torch.Tensor:
    return y if gelu is None else F.gelu(y, approximate=gelu)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, gelu: str | None = None,
           residual: torch.Tensor | None = None) -> torch.Tensor:
    """``residual + GELU(x Wᵀ + b)`` over the last axis; ``gelu`` is None (no activation) or the
    ``approximate`` argument of ``F.gelu`` ("none", "tanh"); ``residual`` (shaped like the output)
    is added after the activation, and may not be combined with one.

    Shapes: x (..., in), weight (out, in), bias (out,), residual (..., out) -> (..., out).
    """
    if gelu is not None and residual is not None:
        raise ValueError("fused.linear: either an activation or a residual add, not both")
    if use_onednn(x):
        x2 = x.reshape(-1, x.shape[-1])
        if residual is not None:
            y = _OPS._linear_pointwise.binary(x2, residual.reshape(-1, weight.shape[0]), weight, bias, "add")
        else:
            y = _OPS._linear_pointwise(x2, weight, bias, "none" if gelu is None else "gelu", [],
                                       "" if gelu is None else gelu)
        return y.view(*x.shape[:-1], weight.shape[0])
    y = _act(F.linear(x, weight, bias), gelu)
    return y if residual is None else residual + y


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int,
           groups: int = 1, gelu: str | None = None) -> torch.Tensor:
    """``GELU(conv2d(x, W, b))`` (``gelu`` as in :func:`linear`). Shapes as ``F.conv2d``; a
    ``torch.channels_last`` input gives a channels-last output."""
    if use_onednn(x):
        return _OPS._convolution_pointwise(x, weight, bias, [padding] * 2, [stride] * 2, [1, 1], groups,
                                           "none" if gelu is None else "gelu", [], "" if gelu is None else gelu)
    return _act(F.conv2d(x, weight, bias, stride, padding, groups=groups), gelu)
