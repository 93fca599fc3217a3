"""The ``Objective`` algebra and the helpers every term shares (units per image, labels, range checks).

An ``Objective`` maps the captured activations to one value PER IMAGE, shape (B,),
to be maximized (Lucid's sign). Terms add, subtract and scale; each can be
restricted to one batch element, and a per-image unit list renders several units
in one batch. ``layers`` says which activations a term needs, so the engine can
stop the forward pass right after the deepest one.
"""
from __future__ import annotations

import functools
from typing import Callable, Mapping, Sequence

import torch

from ..errors import LayerError
from ..runtime import to_device

Acts = Mapping[str, torch.Tensor]
#: Key under which the engine passes the rendered image (B, 3, H, W) to penalties.
IMAGE = "<image>"
#: ``probe(images, layers)``: the activations at ``layers`` of (B, 3, H, W) images in [0, 1], untransformed
#: (only resized to the model's input), through the same network as the render's. The engine hands it
#: to every term once, before the first step (``Objective.prepare``); gradients flow through it.
Probe = Callable[[torch.Tensor, Sequence[str]], dict[str, torch.Tensor]]


class Objective:
    """A function of activations returning per-image values, with a name and a description."""

    def __init__(
        self,
        fn: Callable[[Acts], torch.Tensor],
        *,
        layers: Sequence[str] = (),
        description: str,
        labels: Callable[[int], str] | None = None,
        check: Callable[[Mapping[str, torch.Size]], None] | None = None,
        prepare: Callable[[Probe], None] | None = None,
    ) -> None:
        self.fn = fn
        self.layers = tuple(dict.fromkeys(layers))
        self.description = description
        self._labels = labels or (lambda b: "")
        self._check = check or (lambda shapes: None)
        self._prepare = prepare or (lambda probe: None)

    def __call__(self, acts: Acts) -> torch.Tensor:
        return self.fn(acts)

    def label(self, b: int) -> str:
        """A short label for batch element ``b`` (for grids and file names)."""
        return self._labels(b)

    def check(self, shapes: Mapping[str, torch.Size]) -> None:
        """Raise ``LayerError`` if a unit is out of range for the actual layer shapes."""
        self._check(shapes)

    def prepare(self, probe: Probe) -> None:
        """Called once before the first step: a term that compares with fixed images (a photo) reads them here."""
        self._prepare(probe)

    def __add__(self, other: "Objective | float") -> "Objective":
        if isinstance(other, (int, float)):
            if other == 0:
                return self
            return Objective(lambda a: self(a) + other, layers=self.layers,
                             description=f"{self.description} + {other}", labels=self._labels, check=self._check,
                             prepare=self._prepare)
        return _combine(self, other, 1.0)

    __radd__ = __add__

    def __sub__(self, other: "Objective") -> "Objective":
        return _combine(self, other, -1.0)

    def __neg__(self) -> "Objective":
        return self * -1.0

    def __mul__(self, k: float) -> "Objective":
        k = float(k)
        return Objective(lambda a: k * self(a), layers=self.layers, description=f"{fmt_number(k)} * {self.description}",
                         labels=self._labels, check=self._check, prepare=self._prepare)

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"Objective({self.description})"


def fmt_number(k: float) -> str:
    return f"{k:g}"


def _combine(a: Objective, b: Objective, sign: float) -> Objective:
    def labels(i: int) -> str:
        la, lb = a.label(i), b.label(i)
        if la and lb:
            return f"{la} {'+' if sign > 0 else '-'} {lb}"
        return la or (("-" if sign < 0 else "") + lb)

    def check(shapes: Mapping[str, torch.Size]) -> None:
        a.check(shapes)
        b.check(shapes)

    def prepare(probe: Probe) -> None:
        a.prepare(probe)
        b.prepare(probe)

    op = "+" if sign > 0 else "-"
    return Objective(lambda acts: a(acts) + sign * b(acts), layers=a.layers + b.layers,
                     description=f"{a.description} {op} {b.description}", labels=labels, check=check,
                     prepare=prepare)


def batch_mask(values: torch.Tensor, batch: int | None) -> torch.Tensor:
    """Zero every element but ``batch`` (None: keep all)."""
    if batch is None:
        return values
    mask = torch.zeros_like(values)
    mask[batch] = 1.0
    return values * mask


def _per_image_units(units: int | Sequence[int], b: int) -> torch.Tensor:
    if isinstance(units, int):
        return torch.full((b,), units, dtype=torch.long)
    return torch.tensor(list(units), dtype=torch.long)


@functools.lru_cache(maxsize=256)
def _units_cached(units: int | tuple[int, ...], b: int, device: torch.device) -> torch.Tensor:
    return to_device(_per_image_units(units, b), device)


def units_on(units: int | Sequence[int], b: int, device: torch.device) -> torch.Tensor:
    """Per-image unit indices on ``device``, copied there once (no host-to-device copy every step)."""
    return _units_cached(units if isinstance(units, int) else tuple(units), b, device)


def unit_label(layer: str, units: int | Sequence[int], batch: int | None, fmt: str) -> Callable[[int], str]:
    def label(i: int) -> str:
        if batch is not None and i != batch:
            return ""
        u = units if isinstance(units, int) else units[i] if i < len(units) else None
        return fmt.format(layer=layer, unit=u)

    return label


def check_units(layer: str, units: int | Sequence[int], field: str) -> Callable[[Mapping[str, torch.Size]], None]:
    def check(shapes: Mapping[str, torch.Size]) -> None:
        n = n_channels(shapes[layer])
        for u in [units] if isinstance(units, int) else units:
            if not 0 <= u < n:
                raise LayerError(f"{field}: unit {u} is out of range for layer {layer!r} with {n} units (0..{n - 1}).")

    return check


def n_channels(shape: torch.Size) -> int:
    return shape[-1] if len(shape) == 3 else shape[1]


def units_str(units: int | Sequence[int]) -> str:
    if isinstance(units, int):
        return str(units)
    return "[" + ", ".join(map(str, units)) + "]"
