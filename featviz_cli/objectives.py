"""Objectives: what to maximize, as an algebra of named, self-describing terms.

An ``Objective`` maps the captured activations to one value PER IMAGE, shape (B,),
to be maximized (Lucid's sign). Terms add, subtract and scale; each can be
restricted to one batch element, and a per-image unit list renders several units
in one batch. ``layers`` says which activations a term needs, so the engine can
stop the forward pass right after the deepest one.
"""
from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from .config import ObjectiveSpec, term_path
from .errors import LayerError, SpecError
from .hooks import OUTPUT, channel_view
from .runtime import to_device

Acts = Mapping[str, torch.Tensor]
#: Key under which the engine passes the rendered image (B, 3, H, W) to penalties.
IMAGE = "<image>"


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
    ) -> None:
        self.fn = fn
        self.layers = tuple(dict.fromkeys(layers))
        self.description = description
        self._labels = labels or (lambda b: "")
        self._check = check or (lambda shapes: None)

    def __call__(self, acts: Acts) -> torch.Tensor:
        return self.fn(acts)

    def label(self, b: int) -> str:
        """A short label for batch element ``b`` (for grids and file names)."""
        return self._labels(b)

    def check(self, shapes: Mapping[str, torch.Size]) -> None:
        """Raise ``LayerError`` if a unit is out of range for the actual layer shapes."""
        self._check(shapes)

    def __add__(self, other: "Objective | float") -> "Objective":
        if isinstance(other, (int, float)):
            if other == 0:
                return self
            return Objective(lambda a: self(a) + other, layers=self.layers,
                             description=f"{self.description} + {other}", labels=self._labels, check=self._check)
        return _combine(self, other, 1.0)

    __radd__ = __add__

    def __sub__(self, other: "Objective") -> "Objective":
        return _combine(self, other, -1.0)

    def __neg__(self) -> "Objective":
        return self * -1.0

    def __mul__(self, k: float) -> "Objective":
        k = float(k)
        return Objective(lambda a: k * self(a), layers=self.layers, description=f"{_fmt(k)} * {self.description}",
                         labels=self._labels, check=self._check)

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"Objective({self.description})"


def _fmt(k: float) -> str:
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

    op = "+" if sign > 0 else "-"
    return Objective(lambda acts: a(acts) + sign * b(acts), layers=a.layers + b.layers,
                     description=f"{a.description} {op} {b.description}", labels=labels, check=check)


def _batch_mask(values: torch.Tensor, batch: int | None) -> torch.Tensor:
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


def _units_on(units: int | Sequence[int], b: int, device: torch.device) -> torch.Tensor:
    """Per-image unit indices on ``device``, copied there once (no host-to-device copy every step)."""
    return _units_cached(units if isinstance(units, int) else tuple(units), b, device)


def _unit_label(layer: str, units: int | Sequence[int], batch: int | None, fmt: str) -> Callable[[int], str]:
    def label(i: int) -> str:
        if batch is not None and i != batch:
            return ""
        u = units if isinstance(units, int) else units[i] if i < len(units) else None
        return fmt.format(layer=layer, unit=u)

    return label


def _check_units(layer: str, units: int | Sequence[int], field: str) -> Callable[[Mapping[str, torch.Size]], None]:
    def check(shapes: Mapping[str, torch.Size]) -> None:
        n = _n_channels(shapes[layer])
        for u in [units] if isinstance(units, int) else units:
            if not 0 <= u < n:
                raise LayerError(f"{field}: unit {u} is out of range for layer {layer!r} with {n} units (0..{n - 1}).")

    return check


def _n_channels(shape: torch.Size) -> int:
    return shape[-1] if len(shape) == 3 else shape[1]


def channel(layer: str, units: int | Sequence[int], *, batch: int | None = None, field: str = "objective.unit") -> Objective:
    """Mean activation of channel ``units`` (an int, or one per image) over space/tokens."""

    def fn(acts: Acts) -> torch.Tensor:
        a = channel_view(acts[layer])
        idx = _units_on(units, a.shape[0], a.device)
        picked = a[torch.arange(a.shape[0], device=a.device), idx]
        return _batch_mask(picked.float().mean(-1), batch)

    return Objective(fn, layers=[layer], description=f"channel {layer}:{_units_str(units)}",
                     labels=_unit_label(layer, units, batch, "{layer}:{unit}"), check=_check_units(layer, units, field))


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
        idx = _units_on(units, a.shape[0], a.device)
        values = a[torch.arange(a.shape[0], device=a.device), idx, position(act)]
        return _batch_mask(values.float(), batch)

    where = "centre" if x is None and y is None else f"x={x}, y={y}"
    check_units = _check_units(layer, units, field)

    def check(shapes: Mapping[str, torch.Size]) -> None:
        check_units(shapes)
        position(torch.empty(shapes[layer], device="meta"))

    return Objective(fn, layers=[layer], description=f"neuron {layer}:{_units_str(units)} at {where}",
                     labels=_unit_label(layer, units, batch, "{layer}:{unit}@n"), check=check)


def deepdream(layer: str, *, batch: int | None = None) -> Objective:
    """Mean of the squared activations of a whole layer (DeepDream)."""

    def fn(acts: Acts) -> torch.Tensor:
        a = acts[layer].float()
        return _batch_mask((a * a).flatten(1).mean(-1), batch)

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
        idx = _units_on(units, a.shape[0], a.device)
        return _batch_mask(a[torch.arange(a.shape[0], device=a.device), idx], batch)

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

    return Objective(fn, layers=[layer], description=desc, labels=label, check=_check_units(layer, units, field))


def direction(layer: str, vector: torch.Tensor | None = None, *, seed: int | None = None, cossim_pow: float = 0.0,
              batch: int | None = None, name: str = "vector") -> Objective:
    """Dot product of each position's activation vector with ``vector``, averaged over space.

    Without ``vector``, a random unit direction seeded by ``seed`` is drawn once the
    layer's width is known. With ``cossim_pow`` > 0 the dot product is multiplied by
    max(cos, 0.1)**cossim_pow (Lucid's direction_neuron), favouring the direction over magnitude.
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
        dot = torch.einsum("bcs,c->bs", a, v)
        if cossim_pow > 0:
            cos = dot / (a.norm(dim=1) + eps) / (v.norm() + eps)
            dot = dot * cos.clamp(min=0.1) ** cossim_pow
        return _batch_mask(dot.mean(-1), batch)

    def check(shapes: Mapping[str, torch.Size]) -> None:
        n = _n_channels(shapes[layer])
        if vector is not None and vector.numel() != n:
            raise LayerError(f"objective.vector: has {vector.numel()} values but layer {layer!r} has {n} channels.")

    suffix = f", cossim_pow={_fmt(cossim_pow)}" if cossim_pow else ""
    return Objective(fn, layers=[layer], description=f"direction {layer} ({name}{suffix})",
                     labels=lambda i: "" if batch is not None and i != batch else f"{layer}:{name}", check=check)


def random_direction(n: int, seed: int) -> torch.Tensor:
    """A seeded random unit vector of length ``n``."""
    v = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


def load_vector(path: str, field: str = "objective.vector_file") -> torch.Tensor:
    """A 1-D vector from a .npy or .pt/.pth file (tensors only; no pickled code)."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(field, f"{path}: no such file.")
    try:
        if p.suffix == ".npy":
            import numpy as np

            v = torch.from_numpy(np.load(p, allow_pickle=False)).float()
        else:
            v = torch.load(p, map_location="cpu", weights_only=True)
            if not isinstance(v, torch.Tensor):
                raise ValueError("the file does not hold a tensor")
            v = v.float()
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad input file
        raise SpecError(field, f"{path}: cannot read a vector ({e}); save a 1-D array with numpy.save or torch.save.") from None
    return v.flatten()


# ---------------------------------------------------------------- terms that compare batch elements


def _group_mask(b: int, group: int | None, device: torch.device) -> torch.Tensor:
    """(B, B) True where two batch elements are in the same consecutive group of ``group`` (None: one group)."""
    ids = torch.arange(b, device=device) // (group or b)
    return ids[:, None] == ids[None, :]


def gram_cosine(act: torch.Tensor) -> torch.Tensor:
    """(B, B) cosine similarities between the batch elements' Gram matrices (channels x channels) of ``act``."""
    a = channel_view(act).float()  # (B, C, S)
    grams = torch.bmm(a, a.transpose(1, 2)).flatten(1)
    grams = torch.nn.functional.normalize(grams, dim=1, eps=1e-10)
    return grams @ grams.T


def diversity(layer: str, *, group: int | None = None) -> Objective:
    """Lucid's diversity: minus the summed Gram cosine similarity of each image to the others of its group.

    Image i's value is -sum_{j != i} cos(G_i, G_j) / K for the K images of its group, so the batch
    total is minus Lucid's ``diversity(layer)``; maximizing it (weight > 0) pushes the images apart.
    """

    def fn(acts: Acts) -> torch.Tensor:
        sim = gram_cosine(acts[layer])
        b = sim.shape[0]
        same = _group_mask(b, group, sim.device) & ~torch.eye(b, dtype=torch.bool, device=sim.device)
        return -(sim * same).sum(1) / (group or b)

    where = f", groups of {group}" if group else ""
    return Objective(fn, layers=[layer], description=f"diversity {layer}{where}")


def alignment(layer: str, *, group: int | None = None, decay_ratio: float = 2.0, reach: int = 4) -> Objective:
    """Lucid's alignment: minus the mean squared difference of activations between batch elements
    1..``reach`` apart, each distance d weighted 1/decay_ratio**d (keeps interpolation frames alike).

    The penalty of a pair (i, i + d) is counted in image i's value.
    """

    def fn(acts: Acts) -> torch.Tensor:
        a = acts[layer].float().flatten(1)
        b = a.shape[0]
        same = _group_mask(b, group, a.device)
        values = torch.zeros(b, device=a.device)
        for d in range(1, min(reach, b - 1) + 1):
            idx = torch.arange(b - d, device=a.device)
            mse = (a[:-d] - a[d:]).pow(2).mean(-1) * same[idx, idx + d]
            values = values - torch.nn.functional.pad(mse, (0, d)) / decay_ratio**d
        return values

    where = f", groups of {group}" if group else ""
    return Objective(fn, layers=[layer], description=f"alignment {layer}{where}")


def blend(a: Objective, b: Objective, weights: Sequence[float]) -> Objective:
    """Per image i: (1 - t_i) * a + t_i * b with ``t = weights`` (interpolation frames from a to b)."""
    t_cpu = torch.tensor([float(w) for w in weights])

    def fn(acts: Acts) -> torch.Tensor:
        va, vb = a(acts), b(acts)
        t = t_cpu.to(va.device, va.dtype)
        return (1 - t) * va + t * vb

    def label(i: int) -> str:
        return f"t={float(t_cpu[i]):.2f}" if i < len(t_cpu) else ""

    def check(shapes: Mapping[str, torch.Size]) -> None:
        a.check(shapes)
        b.check(shapes)

    return Objective(fn, layers=a.layers + b.layers, labels=label, check=check,
                     description=f"interpolate({a.description} -> {b.description}, {len(t_cpu)} frames)")


# ---------------------------------------------------------------- penalties on the image


def total_variation(*, batch: int | None = None) -> Objective:
    """Mean absolute difference between neighbouring pixels (a frequency penalty; to subtract)."""

    def fn(acts: Acts) -> torch.Tensor:
        x = acts[IMAGE]
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(-1)
        dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(-1)
        return _batch_mask(dx + dy, batch)

    return Objective(fn, layers=[IMAGE], description="total_variation(image)")


def lp_norm(p: int, constant: float = 0.5) -> Objective:
    """Mean |image - constant|**p (L1 or L2 penalty; to subtract)."""

    def fn(acts: Acts) -> torch.Tensor:
        return ((acts[IMAGE] - constant).abs() ** p).flatten(1).mean(-1)

    return Objective(fn, layers=[IMAGE], description=f"L{p}(image - {constant})")


def distance_to(target: torch.Tensor, name: str = "init_image") -> Objective:
    """Mean squared distance of each image to ``target`` (1 or B, 3, H, W) (a penalty; to subtract)."""

    def fn(acts: Acts) -> torch.Tensor:
        x = acts[IMAGE]
        return (x - target.to(x.device, x.dtype)).pow(2).flatten(1).mean(-1)

    return Objective(fn, layers=[IMAGE], description=f"L2(image - {name})")


# ---------------------------------------------------------------- from the spec


def resolve_class(unit: int | str, names: Sequence[str] | None, field: str) -> int:
    """A class index from an index or a class name (case-insensitive), with close matches on error."""
    if isinstance(unit, int):
        return unit
    if names is None:
        raise SpecError(field, f"class name {unit!r} given, but this model has no class names; give an index.")
    lowered = [n.lower() for n in names]
    key = unit.strip().lower()
    if key in lowered:
        return lowered.index(key)
    close = difflib.get_close_matches(key, lowered, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(names[lowered.index(c)]) for c in close)}?" if close else ""
    raise SpecError(field, f"no class named {unit!r} in this model.{hint}")


def from_spec(terms: Sequence[ObjectiveSpec], class_names: Sequence[str] | None = None) -> Objective:
    """Build the summed objective of a list of spec terms."""
    total: Objective | None = None
    for i, t in enumerate(terms):
        obj = _term(t, class_names, term_path(len(terms), i))
        if t.weight != 1.0:
            obj = obj * t.weight
        total = obj if total is None else total + obj
    assert total is not None, "validated specs have at least one objective term"
    return total


def build_term(t: ObjectiveSpec, names: Sequence[str] | None, where: str) -> Objective:
    """One spec term as an objective, times its weight; ``where`` names it in errors (``objective[1]``)."""
    obj = _term(t, names, where)
    return obj * t.weight if t.weight != 1.0 else obj


def _term(t: ObjectiveSpec, names: Sequence[str] | None, where: str) -> Objective:
    field = f"{where}.unit" if t.units is None else f"{where}.units"
    if t.type == "diversity":
        return diversity(t.layer or "", group=t.group)
    if t.type == "alignment":
        return alignment(t.layer or "", group=t.group)
    raw = t.units if t.units is not None else t.unit
    if t.type in ("logit", "probability"):
        if isinstance(raw, list):
            units: int | list[int] = [resolve_class(u, names, field) for u in raw]
        else:
            units = resolve_class(raw, names, field)  # type: ignore[arg-type]
        return logit(units, layer=t.layer or OUTPUT, batch=t.batch, names=names,
                     probability=t.type == "probability", field=field)
    assert t.layer is not None
    if t.type in ("layer", "deepdream"):
        return deepdream(t.layer, batch=t.batch)
    if t.type == "direction":
        if t.vector is not None:
            vec, name = torch.tensor(t.vector, dtype=torch.float32), "vector"
        elif t.vector_file is not None:
            vec, name = load_vector(t.vector_file, f"{where}.vector_file"), Path(t.vector_file).name
        else:
            vec, name = None, f"random seed {t.random_seed}"
        return direction(t.layer, vec, seed=t.random_seed, cossim_pow=t.cossim_pow, batch=t.batch, name=name)
    int_units = raw if isinstance(raw, list) else int(raw)  # type: ignore[arg-type]
    if t.type == "neuron":
        return neuron(t.layer, int_units, t.x, t.y, batch=t.batch, field=field)  # type: ignore[arg-type]
    return channel(t.layer, int_units, batch=t.batch, field=field)  # type: ignore[arg-type]


def _units_str(units: int | Sequence[int]) -> str:
    if isinstance(units, int):
        return str(units)
    return "[" + ", ".join(map(str, units)) + "]"
