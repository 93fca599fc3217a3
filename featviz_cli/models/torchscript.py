"""``model.name: torchscript``: a file saved with ``torch.jit.save``, used as it is.

A ``featviz_info.json`` extra file in the archive sets ModelInfo fields (``INFO_FIELDS``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn as nn

from ..errors import ModelError
from ._registry import register_model
from .checkpoint import check_file, is_torchscript, load_checkpoint, load_torchscript
from .info import ModelInfo, info_fields

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ModelSpec


@register_model("torchscript")
def build_torchscript(spec: "ModelSpec") -> tuple[nn.Module, ModelInfo]:
    """``model.name: torchscript``: the ``model.checkpoint`` TorchScript file, used as it is."""
    if not spec.checkpoint:
        raise ModelError(
            "model.checkpoint: required with model.name: torchscript; give a file saved with torch.jit.save."
        )
    p = check_file(spec.checkpoint)
    if not is_torchscript(p):
        load_checkpoint(p, trust=spec.trust_checkpoint)  # a damaged file gets its own message
        raise ModelError(
            f"model.checkpoint: {p} is a state dict, not TorchScript; name its architecture in model.name "
            "(e.g. torchvision/resnet50) or model.python instead of torchscript."
        )
    module, meta = load_torchscript(p)
    fields = info_fields(meta, f"model.checkpoint: {p}: featviz_info.json") if meta is not None else {}
    # Python forward hooks on the submodules of a scripted model do not fire: note it for the engine.
    info = ModelInfo(name="torchscript", weights=str(p), source="torchscript", extra={"scripted": True}, **fields)
    return module, info
