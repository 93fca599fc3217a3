"""``torchvision/<arch>``: any ``torchvision.models.list_models()`` architecture.

With torchvision's pretrained weights (``model.weights``, downloaded through torch.hub),
random weights (``weights: none``) or a local state dict (``model.checkpoint``). The
ModelInfo comes from the weights' preset (mean, std, crop size, categories).
"""
from __future__ import annotations

import difflib
import http.client
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from ..errors import ModelError
from ..usercode import one_line
from ._registry import register_source
from .checkpoint import load_checkpoint_into, random_weights
from .info import IMAGENET_MEAN, IMAGENET_STD, ModelInfo

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ModelSpec

# googlenet and inception_v3 take ``transform_input``: when True, forward() re-maps an
# ImageNet-normalized input to the (x - 0.5) / 0.5 scale the ported TF weights expect.
# featviz does all normalization itself from ModelInfo (data, not code), so the flag stays
# False and the pretrained ModelInfo carries mean = std = 0.5 instead, which is exactly
# equivalent. Aux heads are dropped (they only matter in training), and torchvision's slow
# scipy truncated-normal init is skipped for random weights (init_weights=False).
_TRANSFORM_INPUT_ARCHS = frozenset({"googlenet", "inception_v3", "quantized_googlenet", "quantized_inception_v3"})
_TF_MEAN_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)
# Input size of the architectures that are not 224 px (without weights to read it from).
_NATIVE_SIZE: dict[str, int] = {"inception_v3": 299, "quantized_inception_v3": 299}


def _check_arch(arch: str) -> None:
    """``ModelError`` with close matches when torchvision has no architecture ``arch``."""
    from torchvision.models import list_models

    known = list_models()
    if arch in known:
        return
    close = difflib.get_close_matches(arch.lower(), known, n=4, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else " See torchvision.models.list_models() for the names."
    raise ModelError(f"model.name: torchvision has no architecture {arch!r}.{hint}")


def resolve_torchvision_weights(arch: str, name: str | None) -> Any:
    """The torchvision weights enum member for ``name`` (None/DEFAULT: the default), or None for ``none``."""
    if random_weights(name):
        return None
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(arch)
    except (KeyError, ValueError):
        raise ModelError(
            f"model.weights: torchvision/{arch} has no pretrained weights; set weights: none or give model.checkpoint."
        ) from None
    wanted = (name or "DEFAULT").strip()
    wanted = wanted.removeprefix(f"{enum.__name__}.")
    for candidate in (wanted, wanted.upper()):
        if candidate in enum.__members__:
            return enum[candidate]
    valid = list(enum.__members__) + ["none"]
    close = difflib.get_close_matches(wanted.upper(), valid, n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    raise ModelError(
        f"model.weights: {name!r} is not a weights name of torchvision/{arch}.{hint} Valid: {', '.join(valid)}."
    )


def _torchvision_kwargs(arch: str, user: dict[str, Any]) -> dict[str, Any]:
    """Constructor kwargs: the user's, plus the flags googlenet/inception_v3 need (see comment above)."""
    kwargs = dict(user)
    if arch in _TRANSFORM_INPUT_ARCHS:
        if kwargs.get("transform_input", False):
            raise ModelError(
                f"model.kwargs.transform_input: must be false for torchvision/{arch}; featviz normalizes the input "
                "itself (set model.mean/model.std instead)."
            )
        kwargs["transform_input"] = False
        kwargs.setdefault("aux_logits", False)
        kwargs.setdefault("init_weights", False)
    return kwargs


def _build_torchvision(arch: str, weights: Any, kwargs: dict[str, Any]) -> nn.Module:
    """``torchvision.models.get_model``; download, hash, load and kwargs failures become ``ModelError``."""
    from torchvision.models import get_model

    if weights is not None:
        kwargs = {"progress": sys.stderr.isatty(), **kwargs}
    label = f"torchvision/{arch}" + (f" with weights {weights.name}" if weights is not None else "")
    try:
        return get_model(arch, weights=weights, **kwargs)
    except (OSError, http.client.HTTPException) as e:
        if weights is None:
            raise ModelError(f"model.name: cannot build {label} ({one_line(e)}).") from None
        raise ModelError(
            f"model.weights: the {weights.name} weights of torchvision/{arch} could not be downloaded "
            f"({one_line(e, 160)}); check the internet connection, or set 'weights: none' for random weights, "
            "or 'checkpoint: <file>' for a local copy of the weights."
        ) from None
    except RuntimeError as e:
        if "invalid hash" in str(e):
            raise ModelError(
                f"model.weights: the downloaded {weights.name} file of torchvision/{arch} is corrupt; delete it "
                f"from {Path(torch.hub.get_dir()) / 'checkpoints'} and run again."
            ) from None
        raise ModelError(f"model.weights: cannot load {label} ({one_line(e)}).") from None
    except (TypeError, ValueError) as e:
        raise ModelError(
            f"model.kwargs: torchvision/{arch} rejected {kwargs!r} ({one_line(e)}); fix or remove model.kwargs."
        ) from None


def _default_categories(arch: str, kwargs: dict[str, Any]) -> tuple[str, ...] | None:
    """Class names of the arch's default weights (metadata in code) when the output count matches."""
    from torchvision.models import get_model_weights

    try:
        categories = get_model_weights(arch).DEFAULT.meta.get("categories")
    except (KeyError, ValueError, AttributeError):
        return None
    if not categories or kwargs.get("num_classes", len(categories)) != len(categories):
        return None
    return tuple(categories)


def _torchvision_random_info(arch: str, kwargs: dict[str, Any], weights: str) -> ModelInfo:
    """ModelInfo for random or checkpoint weights: ImageNet preprocessing, the arch's native size."""
    size = kwargs.get("image_size") or _NATIVE_SIZE.get(arch, 224)
    return ModelInfo(
        name=f"torchvision/{arch}",
        input_size=int(size),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        class_names=_default_categories(arch, kwargs),
        weights=weights,
        source="torchvision",
    )


def _torchvision_weights_info(arch: str, weights: Any) -> ModelInfo:
    """ModelInfo read from a weights enum member: its preset's mean/std/crop size and its categories."""
    preset = weights.transforms()
    mean = tuple(float(v) for v in getattr(preset, "mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in getattr(preset, "std", IMAGENET_STD))
    if arch in _TRANSFORM_INPUT_ARCHS:  # transform_input folded into the normalization, see above
        mean, std = _TF_MEAN_STD, _TF_MEAN_STD
    crop = getattr(preset, "crop_size", None) or [_NATIVE_SIZE.get(arch, 224)]
    size = crop[0] if isinstance(crop, (list, tuple)) else crop
    categories = weights.meta.get("categories")
    return ModelInfo(
        name=f"torchvision/{arch}",
        input_size=int(size),
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        class_names=tuple(categories) if categories else None,
        weights=weights.name,
        source="torchvision",
    )


@register_source("torchvision")
def build_torchvision(arch: str, spec: "ModelSpec") -> tuple[nn.Module, ModelInfo]:
    """``torchvision/<arch>``: pretrained (``model.weights``), random (``weights: none``) or a local state dict."""
    _check_arch(arch)
    kwargs = _torchvision_kwargs(arch, spec.kwargs)
    if spec.checkpoint:
        if spec.weights is not None and not random_weights(spec.weights):
            raise ModelError("model.weights: give either model.weights or model.checkpoint, not both.")
        module = _build_torchvision(arch, None, kwargs)
        load_checkpoint_into(module, spec.checkpoint, trust=spec.trust_checkpoint)
        return module, _torchvision_random_info(arch, kwargs, weights=str(spec.checkpoint))
    weights = resolve_torchvision_weights(arch, spec.weights)
    module = _build_torchvision(arch, weights, kwargs)
    if weights is None:
        return module, _torchvision_random_info(arch, kwargs, weights="none")
    return module, _torchvision_weights_info(arch, weights)
