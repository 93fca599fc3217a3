"""Model registry: a name resolves to a builder that returns (module, ModelInfo).

Per-model facts (preprocessing, native input size, class names) are data in
``ModelInfo``, never branches on the model's name elsewhere in the code.

Two kinds of entry:
- exact names (``efficientnet_lite0``) registered with ``@register_model``;
- sources with a prefix (``torchvision/resnet50``, ``timm/vit_tiny``) registered
  with ``@register_source``; the builder receives the part after the slash.
A spec with ``python:`` or ``checkpoint:`` is handled by the builder of the
matching source (see ``create_model``).

The registry imports no source: each source module imports it and registers itself,
and the package ``__init__`` imports the built-in sources.
"""
from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Callable

from ..errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

    from ..config import ModelSpec
    from .info import ModelInfo


ModelBuilder = Callable[["ModelSpec"], "tuple[nn.Module, ModelInfo]"]
SourceBuilder = Callable[[str, "ModelSpec"], "tuple[nn.Module, ModelInfo]"]

_MODELS: dict[str, ModelBuilder] = {}
_SOURCES: dict[str, SourceBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator: register ``fn(spec) -> (module, info)`` under an exact model name."""

    def deco(fn: ModelBuilder) -> ModelBuilder:
        _MODELS[name] = fn
        return fn

    return deco


def register_source(prefix: str) -> Callable[[SourceBuilder], SourceBuilder]:
    """Decorator: register ``fn(rest, spec) -> (module, info)`` for names ``prefix/rest``."""

    def deco(fn: SourceBuilder) -> SourceBuilder:
        _SOURCES[prefix] = fn
        return fn

    return deco


def available_models() -> list[str]:
    """Exact model names plus ``prefix/...`` patterns for each source."""
    return sorted(_MODELS) + [f"{p}/<name>" for p in sorted(_SOURCES) if p != "python"]


def create_model(spec: "ModelSpec") -> "tuple[nn.Module, ModelInfo]":
    """Build the model a spec names, in eval mode with frozen parameters."""
    import torch

    # Random initial weights (``weights: none``, timm without pretrained) come from a fixed seed,
    # so the same spec builds the same network in every process; the caller's RNG is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module, info = _build(spec)
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module, info


def _build(spec: "ModelSpec") -> "tuple[nn.Module, ModelInfo]":
    name = spec.name
    if spec.python:
        module, info = _SOURCES["python"](spec.python, spec)
    elif name in _MODELS:
        module, info = _MODELS[name](spec)
    elif "/" in name and name.split("/", 1)[0] in _SOURCES:
        prefix, rest = name.split("/", 1)
        module, info = _SOURCES[prefix](rest, spec)
    else:
        close = difflib.get_close_matches(name, list(_MODELS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelError(
            f"model.name: unknown model {name!r}.{hint} Known: {', '.join(available_models())}"
        )
    return module, info

