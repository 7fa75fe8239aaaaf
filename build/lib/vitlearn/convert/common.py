from __future__ import annotations

import torch
import torch.nn as nn


def require(ok: bool, feature: str) -> None:
    """Raises NotImplementedError naming a timm ``feature`` that has no vitlearn counterpart."""
    if not ok:
        raise NotImplementedError(f"from_timm: this timm model uses {feature}, which vitlearn does not implement")


def load_exact(model: nn.Module, state: dict[str, torch.Tensor], rename=None, skip=()) -> nn.Module:
    """Loads ``state`` (keys optionally mapped by ``rename``, keys starting with a prefix in ``skip``
    dropped) into ``model``, requiring every key and shape to match exactly."""
    mapped = {}
    for key, value in state.items():
        if any(key.startswith(s) or key.endswith(s) for s in skip):
            continue
        mapped[rename(key) if rename else key] = value
    own = model.state_dict()
    missing, unexpected = own.keys() - mapped.keys(), mapped.keys() - own.keys()
    if missing or unexpected:
        raise RuntimeError(f"from_timm: key mismatch; missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    bad = [k for k in own if own[k].shape != mapped[k].shape]
    if bad:
        raise RuntimeError(f"from_timm: shape mismatch at {bad[:5]}")
    model.load_state_dict(mapped, strict=True)
    return model
