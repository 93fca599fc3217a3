"""What the engine must know about a model, as data: ``ModelInfo``, and reading it from a user's dict.

Torch-free: the registry and every source describe their models with it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ModelError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# What a factory's ``featviz_info`` dict (or a TorchScript ``featviz_info.json``) may set.
INFO_FIELDS: tuple[str, ...] = ("input_size", "mean", "std", "value_range", "class_names")


@dataclass(frozen=True)
class ModelInfo:
    """What the engine must know about a model, as data.

    The engine feeds the network ``(value_range[0] + x * (value_range[1] - value_range[0]) - mean) / std``
    for an image ``x`` in [0, 1]; ``mean``/``std`` are on the ``value_range`` scale.
    """

    name: str
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    value_range: tuple[float, float] = (0.0, 1.0)
    class_names: tuple[str, ...] | None = None
    weights: str | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)


def info_fields(data: Any, where: str) -> dict[str, Any]:
    """Validate a ``featviz_info`` mapping into ``ModelInfo`` keyword arguments."""
    if not isinstance(data, dict):
        raise ModelError(f"{where}: featviz_info must be a dict with keys {', '.join(INFO_FIELDS)}.")
    unknown = [str(k) for k in data if k not in INFO_FIELDS]
    if unknown:
        raise ModelError(
            f"{where}: featviz_info has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(INFO_FIELDS)}."
        )
    return {key: _info_value(key, value, f"{where}: featviz_info[{key!r}]") for key, value in data.items()}


def _info_value(key: str, value: Any, where: str) -> Any:
    """One ``featviz_info`` value, checked and converted to the ``ModelInfo`` field type."""
    def numbers(n: int) -> tuple[float, ...]:
        ok = isinstance(value, (list, tuple)) and len(value) == n and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        )
        if not ok:
            raise ModelError(f"{where} must be {n} numbers, got {value!r}.")
        return tuple(float(v) for v in value)

    if key == "input_size":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ModelError(f"{where} must be a positive integer (pixels), got {value!r}.")
        return value
    if key in ("mean", "std"):
        return numbers(3)
    if key == "value_range":
        low, high = numbers(2)
        if low >= high:
            raise ModelError(f"{where} must be [low, high] with low < high, got {value!r}.")
        return (low, high)
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ModelError(f"{where} must be a list of strings, got {type(value).__name__}.")
    return tuple(value)
