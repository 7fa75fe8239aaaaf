"""A small, honest training loop for the book's experiments (AdamW, cosine schedule, label smoothing)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# Parameters that are not weights of a linear or conv map: decaying them towards 0 is not a
# regulariser but a bias (e.g. it pulls ViT-LSLA's dynamic scale, a temperature, towards 0).
_NO_DECAY_NAME_PARTS = ("pos_embed", "cls_token", "dist_token", "_table", "gamma")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Splits ``model``'s trainable parameters into an AdamW group with ``weight_decay`` and one without.

    No decay for: biases and every other 1-D parameter (norm weights, LayerScale γ), position
    embeddings and class tokens, relative-position and scale tables (names ending in ``_table``), and
    any name listed by the model's own ``no_weight_decay()`` (the timm convention).
    """
    extra = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim <= 1 or name in extra or any(part in name for part in _NO_DECAY_NAME_PARTS)
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on images ``x`` (n, C, H, W) with labels ``y`` (n,)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(y), batch_size):
        logits = model(x[i:i + batch_size].to(device))
        correct += (logits.argmax(-1).cpu() == y[i:i + batch_size]).sum().item()
    model.train(was_training)
    return correct / len(y)


def train_classifier(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    label_smoothing: float = 0.1,
    seed: int = 0,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, list[float]]:
    """Trains ``model`` in place on tensors already in memory; returns the per-epoch history
    ``{"loss": [...], "test_acc": [...]}``. Shuffling uses its own seeded generator, so a run is
    repeatable on a given machine. ``amp_dtype`` (e.g. ``torch.bfloat16``) enables autocast.
    Weight decay applies to linear and conv weights only (:func:`param_groups`)."""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
    steps_per_epoch = math.ceil(len(y_train) / batch_size)
    total = epochs * steps_per_epoch
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    history: dict[str, list[float]] = {"loss": [], "test_acc": []}
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y_train), generator=g)
        running = 0.0
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = x_train[idx].to(device), y_train[idx].to(device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = F.cross_entropy(model(xb), yb, label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item() * len(idx)
        history["loss"].append(running / len(y_train))
        if x_test is not None:
            history["test_acc"].append(evaluate(model, x_test, y_test))
    model.eval()
    return history
