"""``timm/<name>``: ``timm.create_model`` (needs the ``timm`` extra).

``import timm`` here is the timm package (imports are absolute), imported when a timm model
is built. The ModelInfo comes from the model's ``pretrained_cfg``.
"""
from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import torch.nn as nn

from ..errors import ModelError
from ..usercode import one_line
from ._registry import register_source
from .checkpoint import load_checkpoint_into, random_weights
from .imagenet import imagenet_classes
from .info import IMAGENET_MEAN, IMAGENET_STD, ModelInfo

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ModelSpec


def _import_timm() -> Any:
    """The ``timm`` package, or a ``ModelError`` saying how to install it."""
    try:
        import timm
    except ImportError:
        raise ModelError(
            "model.name: timm models need timm; install the timm extra: pip install 'featviz[timm]'."
        ) from None
    return timm


def _check_timm_name(timm: Any, name: str) -> None:
    """``ModelError`` with close matches when timm does not know ``name``."""
    is_model = getattr(timm, "is_model", None)
    if is_model is None or ":" in name or is_model(name):  # "hf-hub:org/name" names are resolved by timm itself
        return
    known = list(timm.list_models()) if hasattr(timm, "list_models") else []
    close = difflib.get_close_matches(name, known, n=4)
    hint = f" Did you mean {', '.join(close)}?" if close else " See timm.list_models() for the names."
    raise ModelError(f"model.name: timm has no model {name!r}.{hint}")


def _timm_info(name: str, module: nn.Module, weights: str | None) -> ModelInfo:
    """ModelInfo from timm's ``pretrained_cfg`` (input size, mean, std, number of classes)."""
    cfg = dict(getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None) or {})
    size = cfg.get("input_size") or (3, 224, 224)
    num_classes = getattr(module, "num_classes", cfg.get("num_classes"))
    labels = cfg.get("label_names")
    if labels and len(labels) == num_classes:
        class_names: tuple[str, ...] | None = tuple(labels)
    else:
        class_names = imagenet_classes() if num_classes == 1000 else None
    return ModelInfo(
        name=f"timm/{name}",
        input_size=int(size[-2]),
        mean=tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN)),  # type: ignore[arg-type]
        std=tuple(float(v) for v in cfg.get("std", IMAGENET_STD)),  # type: ignore[arg-type]
        class_names=class_names,
        weights=weights,
        source="timm",
    )


@register_source("timm")
def build_timm(name: str, spec: "ModelSpec") -> tuple[nn.Module, ModelInfo]:
    """``timm/<name>``: ``timm.create_model(name, pretrained=model.pretrained, **model.kwargs)``."""
    timm = _import_timm()
    if spec.weights is not None and not random_weights(spec.weights):
        raise ModelError(
            "model.weights: timm models take model.pretrained (true/false) or a tag in the name, "
            "e.g. timm/resnet50.a1_in1k."
        )
    _check_timm_name(timm, name)
    pretrained = spec.pretrained and not spec.checkpoint and not random_weights(spec.weights)
    try:
        module = timm.create_model(name, pretrained=pretrained, **spec.kwargs)
    except OSError as e:
        raise ModelError(
            f"model.pretrained: the weights of timm/{name} could not be downloaded ({one_line(e, 160)}); "
            "check the internet connection, or set model.pretrained: false, or give model.checkpoint."
        ) from None
    except Exception as e:  # noqa: BLE001 - timm raises many types for bad names/kwargs
        raise ModelError(
            f"model.name: timm could not create {name!r} ({one_line(e)}); check the name and model.kwargs."
        ) from None
    if spec.checkpoint:
        load_checkpoint_into(module, spec.checkpoint, trust=spec.trust_checkpoint)
        return module, _timm_info(name, module, str(spec.checkpoint))
    return module, _timm_info(name, module, "pretrained" if pretrained else "none")
