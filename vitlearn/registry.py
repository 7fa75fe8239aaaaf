"""One registry of named model variants.

A model module registers a *builder* per variant name::

    @register_model
    def vit_base_patch16_224(**kwargs):
        return _build(dict(patch_size=16, embed_dim=768, depth=12, num_heads=12), kwargs)

``create_model(name, **kwargs)`` calls the builder, so keyword arguments override the variant's
defaults (``num_classes=10``, ``img_size=32``, ``drop_path_rate=0.1``, ...).
"""
from __future__ import annotations

import fnmatch
from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: registers ``fn`` under its function name."""
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    _MODELS[name] = fn
    return fn


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted names of registered variants, optionally filtered by a shell-style ``pattern``
    (``list_models("swin_*")``)."""
    names = sorted(_MODELS)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def model_family(name: str) -> str:
    """The family of a registered variant: the name of the module that registered its builder
    (``"vit"`` for ``vit_base_patch16_224``, ``"vit_lsla"`` for ``vit_lsla_tiny``)."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; see vitlearn.list_models()")
    return _MODELS[name].__module__.rsplit(".", 1)[-1]


def create_model(name: str, **kwargs) -> nn.Module:
    """Builds the registered variant ``name``; ``kwargs`` override its configuration."""
    if name not in _MODELS:
        close = [n for n in _MODELS if name.split("_")[0] in n][:8]
        hint = f" Similar names: {', '.join(close)}." if close else ""
        raise ValueError(f"unknown model {name!r}; see vitlearn.list_models().{hint}")
    return _MODELS[name](**kwargs)


def register_variants(namespace: dict, model_cls: Callable[..., nn.Module], variants: dict[str, tuple],
                      fields: tuple[str, ...], doc: str, **fixed) -> None:
    """Registers one builder per named variant of a model family, a table of small data.

    ``variants`` maps a name to a tuple of values for the keyword arguments ``fields`` of
    ``model_cls``; ``fixed`` keywords are the same for every variant. Each builder is
    ``model_cls(**{**fixed, **config, **kwargs})``, documented by ``doc.format(**config)``, put into
    ``namespace`` (the family module's ``globals()``) and registered under the family's module name.
    """
    def make(name: str, config: dict) -> Callable[..., nn.Module]:
        def builder(**kwargs) -> nn.Module:
            return model_cls(**{**fixed, **config, **kwargs})

        builder.__name__ = builder.__qualname__ = name
        builder.__module__ = namespace["__name__"]
        builder.__doc__ = doc.format(**config)
        return builder

    for name, values in variants.items():
        namespace[name] = register_model(make(name, dict(zip(fields, values))))
