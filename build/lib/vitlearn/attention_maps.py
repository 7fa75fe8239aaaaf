"""Recording post-softmax attention maps from any vitlearn model."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn as nn

from .layers.attention import AttentionModule


@contextlib.contextmanager
def record_attention(model: nn.Module, detach: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Records the post-softmax attention weights of every attention module of ``model``.

    Yields a dict, filled as the model runs, from the module's qualified name (e.g.
    ``"blocks.3.attn"``) to its weights from the latest forward pass, shaped
    (batch, heads, queries, keys); windowed attention gives (batch · windows, heads, M², M²).
    Where a module changes the weights after the softmax (ViT-LSLA's outer position bias), the
    recorded weights are the final ones, those that multiply the values.
    While recording, modules take the explicit softmax path, so the maps are those of
    the very computation that produced the output (the fused kernel never materialises them).

    Example::

        with vitlearn.record_attention(model) as maps:
            model(images)
        maps["blocks.11.attn"].shape   # (B, 12, 197, 197) for ViT-B/16
    """
    maps: dict[str, torch.Tensor] = {}
    modules = [(n, m) for n, m in model.named_modules() if isinstance(m, AttentionModule)]
    if not modules:
        raise ValueError(f"{type(model).__name__} has no vitlearn attention modules to record")

    def make_recorder(name: str):
        def store(attn: torch.Tensor) -> None:
            maps[name] = attn.detach() if detach else attn

        return store

    for name, module in modules:
        module.recorder = make_recorder(name)
    try:
        yield maps
    finally:
        for _, module in modules:
            module.recorder = None


@contextlib.contextmanager
def explicit_attention(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily routes every attention module of ``model`` through the explicit softmax path."""
    modules = [m for m in model.modules() if isinstance(m, AttentionModule)]
    saved = [m.fused for m in modules]
    for m in modules:
        m.fused = False
    try:
        yield model
    finally:
        for m, f in zip(modules, saved):
            m.fused = f
