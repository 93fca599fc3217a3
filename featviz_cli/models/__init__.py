"""Models: the registry, the built-in sources, and ``load_model`` which applies a spec's preprocessing overrides.

Importing the package imports the built-in sources, whose decorators fill the registry.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from . import efficientnet_lite, python, timm, tiny, torchscript, torchvision  # noqa: F401 - they register
from ._registry import available_models, create_model, register_model, register_source
from .info import ModelInfo

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

    from ..config import ModelSpec

__all__ = ["ModelInfo", "available_models", "create_model", "load_model", "register_model", "register_source"]


def load_model(spec: "ModelSpec") -> "tuple[nn.Module, ModelInfo]":
    """Build the model a spec names (frozen, eval mode) with its ModelInfo, overrides applied."""
    module, info = create_model(spec)
    overrides = {
        k: tuple(v) if isinstance(v, list) else v
        for k in ("input_size", "mean", "std", "value_range")
        if (v := getattr(spec, k)) is not None
    }
    return module, dataclasses.replace(info, **overrides) if overrides else info
