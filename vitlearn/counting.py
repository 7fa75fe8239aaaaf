"""Parameter and multiply-accumulate (MAC) counts.

The papers of this field report "FLOPs" that are really MACs: one multiply-add counts once.
``count_macs`` runs one forward pass under ``torch.utils.flop_counter.FlopCounterMode`` (which counts
2 FLOPs per multiply-add of matrix products and convolutions) and halves its total. Element-wise work
(norms, activations, softmax, additions) is not counted; fvcore, used by some of the papers' code,
also charges LayerNorm (about 0.1% of ViT-B/16).
"""
from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn as nn
from torch.utils import flop_counter as _fc

# torch's counter has no formula for the CPU flash-attention kernel (nor for the MPS one) that
# F.scaled_dot_product_attention dispatches to there, so attention would count as zero; the cost is
# that of any SDPA kernel.
def _sdpa_flop(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return _fc.sdpa_flop_count(query, key, value)


for _name in ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_attention_math_for_mps"):
    _op = getattr(torch.ops.aten, _name, None)
    if _op is not None and _op not in _fc.flop_registry:
        _fc.register_flop_formula(_op)(_sdpa_flop)


_ATTENTION_OPS = ("bmm", "baddbmm", "scaled_dot_product", "efficient_attention", "flash_attention", "cudnn_attention")
_LINEAR_OPS = ("mm", "addmm")


def _category(op) -> str:
    name = str(op).split(".")[-1].lstrip("_")
    if any(name.startswith(p) for p in _ATTENTION_OPS):
        return "attention"
    if name in _LINEAR_OPS:
        return "linear"
    if "conv" in name:
        return "conv"
    return "other"


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(
    model: nn.Module,
    input_size: tuple[int, ...] = (3, 224, 224),
    *,
    batch_size: int = 1,
    breakdown: bool = False,
) -> int | dict[str, int]:
    """Multiply-accumulates of one forward pass of ``model`` on a batch of shape ``(batch_size, *input_size)``,
    divided by ``batch_size``.

    With ``breakdown=True`` returns ``{"total", "linear", "conv", "attention", "other"}``, where
    "attention" holds the products between activations (Q Kᵀ and A V, fused or not) and "linear" the
    products with weight matrices. The model runs in eval mode on its own device and dtype.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.randn(batch_size, *input_size, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    counter = _fc.FlopCounterMode(display=False)
    try:
        # Gradients stay enabled: under no_grad FlopCounterMode can fail on models that concatenate
        # a learned token; nothing is kept, as the output is dropped at once.
        with counter:
            model(x)
    finally:
        model.train(was_training)
    by_cat: dict[str, int] = defaultdict(int)
    for op, flops in counter.get_flop_counts()["Global"].items():
        by_cat[_category(op)] += flops
    macs = {k: v // (2 * batch_size) for k, v in by_cat.items()}
    total = sum(macs.values())
    if not breakdown:
        return total
    return {"total": total, **{k: macs.get(k, 0) for k in ("linear", "conv", "attention", "other")}}
