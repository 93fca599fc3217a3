"""Terms on one layer's activations: channel, neuron, deepdream, class logit/probability, direction."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ..errors import LayerError
from ..hooks import OUTPUT, channel_view
from ..runtime import to_device
from .base import (Acts, Objective, batch_mask, check_units, fmt_number, n_channels, unit_label, units_on,
                   units_str)


def channel(layer: str, units: int | Sequence[int], *, batch: int | None = None, field: str = "objective.unit") -> Objective:
    """Mean activation of channel ``units`` (an int, or one per image) over space/tokens."""

    def fn(acts: Acts) -> torch.Tensor:
        a = channel_view(acts[layer])
        idx = units_on(units, a.shape[0], a.device)
        picked = a[torch.arange(a.shape[0], device=a.device), idx]
        return batch_mask(picked.float().mean(-1), batch)

    return Objective(fn, layers=[layer], description=f"channel {layer}:{units_str(units)}",
                     labels=unit_label(layer, units, batch, "{layer}:{unit}"), check=check_units(layer, units, field))


def neuron(layer: str, units: int | Sequence[int], x: int | None = None, y: int | None = None, *,
           batch: int | None = None, field: str = "objective.unit") -> Objective:
    """Activation of one unit at one spatial position (default: the centre) or token."""

    def position(act: torch.Tensor) -> int:
        if act.dim() == 4:
            h, w = act.shape[2:]
            yy, xx = (h // 2 if y is None else y), (w // 2 if x is None else x)
            if not (0 <= yy < h and 0 <= xx < w):
                raise LayerError(f"objective.x/y: position ({xx}, {yy}) is outside the {w}x{h} activation map.")
            return yy * w + xx
        if act.dim() == 3:
            t = act.shape[1]
            pos = t // 2 if x is None else x
            if not 0 <= pos < t:
                raise LayerError(f"objective.x: token {pos} is outside 0..{t - 1}.")
            return pos
        return 0

    def fn(acts: Acts) -> torch.Tensor:
        act = acts[layer]
        a = channel_view(act)
        idx = units_on(units, a.shape[0], a.device)
        values = a[torch.arange(a.shape[0], device=a.device), idx, position(act)]
        return batch_mask(values.float(), batch)

    where = "centre" if x is None and y is None else f"x={x}, y={y}"
    check_range = check_units(layer, units, field)

    def check(shapes: Mapping[str, torch.Size]) -> None:
        check_range(shapes)
        position(torch.empty(shapes[layer], device="meta"))

    return Objective(fn, layers=[layer], description=f"neuron {layer}:{units_str(units)} at {where}",
                     labels=unit_label(layer, units, batch, "{layer}:{unit}@n"), check=check)


def deepdream(layer: str, *, batch: int | None = None) -> Objective:
    """Mean of the squared activations of a whole layer (DeepDream)."""

    def fn(acts: Acts) -> torch.Tensor:
        a = acts[layer].float()
        return batch_mask((a * a).flatten(1).mean(-1), batch)

    return Objective(fn, layers=[layer], description=f"deepdream {layer}",
                     labels=lambda i: "" if batch is not None and i != batch else f"dream {layer}")


def logit(units: int | Sequence[int], *, layer: str = OUTPUT, batch: int | None = None,
          names: Sequence[str] | None = None, probability: bool = False, field: str = "objective.unit") -> Objective:
    """A class logit (pre-softmax), or with ``probability`` its softmax probability."""

    def fn(acts: Acts) -> torch.Tensor:
        a = acts[layer].float()
        if a.dim() > 2:
            a = a.flatten(2).mean(-1)
        if probability:
            a = torch.softmax(a, dim=1)
        idx = units_on(units, a.shape[0], a.device)
        return batch_mask(a[torch.arange(a.shape[0], device=a.device), idx], batch)

    def name_of(u: int | None) -> str:
        if u is None:
            return ""
        return f"{names[u]} ({u})" if names is not None and 0 <= u < len(names) else str(u)

    kind = "probability" if probability else "logit"
    where = "" if layer == OUTPUT else f" at {layer}"
    if isinstance(units, int):
        desc = f"{kind} {name_of(units)}{where}"
    else:
        desc = f"{kind} [{', '.join(name_of(u) for u in units)}]{where}"

    def label(i: int) -> str:
        if batch is not None and i != batch:
            return ""
        u = units if isinstance(units, int) else units[i] if i < len(units) else None
        return name_of(u)

    return Objective(fn, layers=[layer], description=desc, labels=label, check=check_units(layer, units, field))


def direction(layer: str, vector: torch.Tensor | None = None, *, seed: int | None = None, cossim_pow: float = 0.0,
              batch: int | None = None, name: str = "vector", rows: Sequence[int] | None = None) -> Objective:
    """Dot product of each position's activation vector with ``vector``, averaged over space.

    ``vector`` is one direction (C,) for every image, or one per image (B, C): the rows of a
    dictionary, ``rows`` naming them in labels. Without ``vector``, a random unit direction
    seeded by ``seed`` is drawn once the layer's width is known. With ``cossim_pow`` > 0 the dot
    product is multiplied by max(cos, 0.1)**cossim_pow (Lucid's direction_neuron), favouring the
    direction over magnitude.
    """
    eps = 1e-4
    cache: dict[int, torch.Tensor] = {}
    placed: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}

    def vec(n: int) -> torch.Tensor:
        if vector is not None:
            return vector
        if n not in cache:
            cache[n] = random_direction(n, seed or 0)
        return cache[n]

    def fn(acts: Acts) -> torch.Tensor:
        a = channel_view(acts[layer]).float()  # (B, C, S)
        key = (a.shape[1], a.device, a.dtype)
        if key not in placed:  # copied to the device once, not every step
            placed[key] = to_device(vec(a.shape[1]), a.device, a.dtype)
        v = placed[key]
        if v.dim() == 2:  # one direction per image
            dot = torch.einsum("bcs,bc->bs", a, v)
            v_norm = v.norm(dim=1, keepdim=True)
        else:
            dot = torch.einsum("bcs,c->bs", a, v)
            v_norm = v.norm()
        if cossim_pow > 0:
            cos = dot / (a.norm(dim=1) + eps) / (v_norm + eps)
            dot = dot * cos.clamp(min=0.1) ** cossim_pow
        return batch_mask(dot.mean(-1), batch)

    def check(shapes: Mapping[str, torch.Size]) -> None:
        n = n_channels(shapes[layer])
        if vector is not None and vector.shape[-1] != n:
            raise LayerError(f"objective.vector: has {vector.shape[-1]} values but layer {layer!r} has {n} channels.")

    suffix = f", cossim_pow={fmt_number(cossim_pow)}" if cossim_pow else ""
    shown = name if rows is None else f"{name} rows {units_str(list(rows))}"

    def label(i: int) -> str:
        if batch is not None and i != batch:
            return ""
        return f"{layer}:{name}" if rows is None else f"{layer}:{name}[{rows[i]}]" if i < len(rows) else ""

    return Objective(fn, layers=[layer], description=f"direction {layer} ({shown}{suffix})", labels=label, check=check)


def random_direction(n: int, seed: int) -> torch.Tensor:
    """A seeded random unit vector of length ``n``."""
    v = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()
