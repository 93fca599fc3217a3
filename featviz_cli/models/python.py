"""``model.python: "package.module:factory"``: your own ``nn.Module`` factory (this runs your code).

A ``featviz_info`` dict attribute on the returned module sets ModelInfo fields (``INFO_FIELDS``);
``model.checkpoint`` loads a state dict into it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn as nn

from ..errors import ModelError
from ..usercode import FactoryField, load_factory
from ._registry import register_source
from .checkpoint import load_checkpoint_into, random_weights
from .info import ModelInfo, info_fields

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ModelSpec


def _model_error(field: str, message: str) -> ModelError:
    """A ``ModelError`` about ``field``."""
    return ModelError(f"{field}: {message}")


FIELD = FactoryField(
    name="model.python",
    error=_model_error,
    example="; write e.g. 'mymodels:build_net' for build_net() in mymodels.py in the current directory.",
    kwargs="model.kwargs",
    returned="; return the network.",
)


@register_source("python")
def build_python(target: str, spec: "ModelSpec") -> tuple[nn.Module, ModelInfo]:
    """``model.python: "package.module:factory"``: the module ``factory(**model.kwargs)`` returns."""
    if spec.weights is not None and not random_weights(spec.weights):
        raise ModelError("model.weights: applies to torchvision models only; use model.checkpoint with model.python.")
    module = load_factory(target, spec.kwargs, FIELD)
    if spec.checkpoint:
        load_checkpoint_into(module, spec.checkpoint, trust=spec.trust_checkpoint)
    meta = getattr(module, "featviz_info", None)
    fields = info_fields(meta, f"model.python: {target}") if isinstance(meta, dict) else {}
    return module, ModelInfo(name=target, weights=spec.checkpoint, source="python", **fields)
