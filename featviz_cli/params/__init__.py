"""Image parameterizations: the tensors the optimizer changes, and how they become an image.

Importing the package registers the built-in kinds (pixel, fft, cppn, generator, maco);
``build_param(name, options, batch, generator, device)`` makes one from plain options.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

from . import cppn, fft, maco, pixel  # noqa: F401 - each registers its kind
from . import generator as _generator  # noqa: F401 - registers its kind too
from ._registry import ParamKind, param_kind, param_names, register_param
from .base import ImageParam, from_valid_rgb, gaussian_blur, to_valid_rgb
from .shared import SharedLowRes

__all__ = ["ImageParam", "ParamKind", "SharedLowRes", "build_param", "describe_param", "from_valid_rgb",
           "gaussian_blur", "param_kind", "param_names", "register_param", "to_valid_rgb"]


def build_param(name: str, options: Mapping[str, Any], batch: int, generator: torch.Generator,
                device: torch.device) -> ImageParam:
    """The parameterization ``name`` for ``batch`` images, its random init drawn from ``generator``."""
    return param_kind(name).build(options, batch, generator, device)


def describe_param(name: str, options: Mapping[str, Any]) -> str:
    """A one-line description of the parameterization for metadata."""
    return param_kind(name).describe(options)
