"""The plan of a sweep: the term it varies, each layer's units, their batches and shards.

A sweep is planned once the model is loaded (``units: all`` and ranges need the
layer widths): the units of each layer are cut into batches of ``sweep.batch``, one
unit per image, and batch ``b`` belongs to shard ``b % N``.
"""
from __future__ import annotations

import hashlib
import json
import dataclasses
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

from ..config import LATER_FIELDS, SWEEP_BATCH_DEFAULTS, Spec, parse_unit_range, spec_to_dict, term_path
from ..errors import LayerError, SpecError
from ..outputs import sanitize_filename, sha256_bytes
from .techniques import Technique, techniques_of

SWEEPABLE = ("channel", "neuron", "logit", "probability", "direction")
#: Fields of the spec that do not change a unit's image, left out of the run's hash.
UNHASHED = ("device", "output", "name")
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class LayerPlan:
    """The units a sweep renders for one layer, and where their files go."""

    layer: str
    dir: str
    channels: int
    units: tuple[int, ...]
    names: tuple[str, ...] | None = None  # class names, for logit/probability sweeps
    technique: str | None = None  # with sweep.techniques: the technique whose files these are (its dir)

    def rendered_by(self, technique: Technique) -> "LayerPlan":
        """The same layer as one technique renders it: its files under ``<technique dir>/<layer dir>``."""
        return dataclasses.replace(self, dir=f"{technique.dir}/{self.dir}", technique=technique.dir)

    def label(self, unit: int) -> str:
        """How a unit is named in grids and pages: its class name where there is one."""
        if self.names is not None and 0 <= unit < len(self.names):
            return f"{unit} {self.names[unit]}"
        return str(unit)


@dataclass(frozen=True)
class Batch:
    """One optimization: units of one layer, one image each."""

    index: int
    layer: str
    units: tuple[int, ...]
    technique: str | None = None  # with sweep.techniques: the technique it renders (its dir)


@dataclass
class Plan:
    """A resolved sweep: the spec, which term varies, the layers' units and the batches."""

    spec: Spec
    term: int
    layers: list[LayerPlan]
    batch_size: int
    batches: list[Batch]
    spec_hash: str
    hashed: dict[str, Any]
    techniques: tuple[Technique, ...] = ()  # sweep.techniques; () renders each unit once, as the term says

    def layer(self, name: str) -> LayerPlan:
        """The plan of layer ``name``."""
        return next(lp for lp in self.layers if lp.layer == name)

    def technique(self, batch: Batch) -> Technique | None:
        """The technique ``batch`` renders, or None in a sweep without techniques."""
        return next((t for t in self.techniques if t.dir == batch.technique), None) if batch.technique else None

    def files(self, batch: Batch) -> LayerPlan:
        """The layer plan whose directory holds ``batch``'s unit files (its technique's, where it has one)."""
        lp = self.layer(batch.layer)
        technique = self.technique(batch)
        return lp.rendered_by(technique) if technique is not None else lp

    @property
    def total(self) -> int:
        """Number of units in the whole sweep (each unit once per technique)."""
        return sum(len(lp.units) for lp in self.layers) * max(1, len(self.techniques))


def sweep_term(spec: Spec) -> int:
    """Index of the objective term a sweep varies; ``SpecError`` if there is none or more than one.

    It is the term with a layer list or ``units`` (all, a range or a list), else the term
    with a ``unit``. Other terms apply to every image as they are.
    """
    n = len(spec.objective)
    cands = [i for i, t in enumerate(spec.objective) if isinstance(t.layer, list) or t.units is not None]
    if not cands:
        cands = [i for i, t in enumerate(spec.objective) if t.unit is not None]
    if not cands:
        raise SpecError("objective", "a sweep needs a term with units, e.g. "
                        "'{type: channel, layer: <name>, units: all}'.")
    if len(cands) > 1:
        raise SpecError(f"{term_path(n, cands[1])}.units",
                        f"a sweep varies one term, but {term_path(n, cands[0])} has units too; keep units on one term.")
    where = term_path(n, cands[0])
    if spec.objective[cands[0]].type not in SWEEPABLE:
        raise SpecError(f"{where}.type", f"a sweep varies the units of a {', '.join(SWEEPABLE)} term.")
    if spec.objective[cands[0]].type == "direction" and spec.objective[cands[0]].vector_file is None:
        raise SpecError(f"{where}.vector_file", "a direction sweep renders the rows of a dictionary: give "
                        "vector_file, an N x C matrix (.npy, .pt, .safetensors).")
    for i, t in enumerate(spec.objective):
        if t.batch is not None:
            raise SpecError(f"{term_path(n, i)}.batch", "every image of a sweep has its own unit; remove 'batch'.")
    if spec.param.batch is not None:
        raise SpecError("param.batch", "a sweep sets its batch size with sweep.batch; remove param.batch.")
    techniques_of(spec, cands[0])
    return cands[0]


def layer_widths(model: Any, info: Any, layers: Iterable[str]) -> dict[str, int]:
    """Units (channels, or classes at the output) of each layer, from one forward pass of zeros."""
    import torch

    from ..hooks import LayerInfo, forward_to

    names = list(dict.fromkeys(layers))
    param = next(iter(model.parameters()), None)
    x = torch.zeros(1, 3, info.input_size, info.input_size, device=param.device if param is not None else "cpu")
    with torch.no_grad():
        acts = forward_to(model.eval(), x, names)
    return {name: int(LayerInfo(name, "", tuple(acts[name].shape[1:])).channels or 1) for name in names}


def expand_units(raw: int | str | list[int | str] | None, field: str, layer: str, n: int,
                 names: tuple[str, ...] | None, *, by_name: bool, shown: str | None = None) -> tuple[int, ...]:
    """The unit indices a term asks for in a layer of ``n`` units; errors name ``field`` (and ``shown``,
    what holds the units: default the layer)."""
    from ..recipe import resolve_class

    shown = shown or ("the output" if layer.startswith("<") else f"layer {layer!r}")
    if isinstance(raw, str) and not (by_name and ":" not in raw and raw.strip().lower() != "all"):
        s = parse_unit_range(raw, field)
        if (s.stop or 0) > n or (s.start or 0) >= n:
            raise LayerError(f"{field}: range {raw!r} goes past the {n} units of {shown} (0..{n - 1}).")
        units = list(range(n))[s]
    else:
        items = raw if isinstance(raw, list) else [raw]
        units = [resolve_class(u, names, field) if by_name else int(u) for u in items]  # type: ignore[arg-type]
    for u in units:
        if not 0 <= u < n:
            raise LayerError(f"{field}: unit {u} is out of range for {shown} with {n} units (0..{n - 1}).")
    counts = Counter(units)
    dup = next((u for u in units if counts[u] > 1), None)
    if dup is not None:
        raise SpecError(field, f"unit {dup} is listed twice; list each unit once.")
    return tuple(units)


def plan_batches(layers: list[LayerPlan], size: int, techniques: tuple[Technique, ...] = ()) -> list[Batch]:
    """Cut each layer's units into batches of at most ``size``, numbered across the sweep.

    With techniques, each layer's units are cut once per technique, into batches of about ``size``
    images (``size // K`` units for K images per unit).
    """
    batches: list[Batch] = []
    for lp in layers:
        for t in techniques or (None,):
            per = t.units_per_batch(size) if t is not None else size
            for k in range(0, len(lp.units), per):
                batches.append(Batch(len(batches), lp.layer, lp.units[k : k + per], t.dir if t else None))
    return batches


def shard_batches(batches: list[Batch], shard: int, count: int) -> list[Batch]:
    """The batches of shard ``shard`` of ``count``: every ``count``-th, a deterministic disjoint split."""
    return [b for b in batches if b.index % count == shard]


def default_batch(device_type: str) -> int:
    """Units per batch when ``sweep.batch`` is null, by device type (``SWEEP_BATCH_DEFAULTS``)."""
    return SWEEP_BATCH_DEFAULTS.get(device_type, SWEEP_BATCH_DEFAULTS["cpu"])


def hashed_view(spec: Spec, layers: list[LayerPlan], batch_size: int) -> dict[str, Any]:
    """What the run's hash covers: the spec without ``UNHASHED`` fields, the batch size, the techniques
    (where given) and every unit."""
    view = spec_to_dict(spec)
    for key in UNHASHED:
        view.pop(key, None)
    defaults = spec_to_dict(Spec())
    for path in LATER_FIELDS:
        _drop_at_default(view, defaults, path.split("."))
    view["sweep"] = {"batch": batch_size}
    if spec.sweep.techniques is not None:
        view["sweep"]["techniques"] = spec_to_dict(spec)["sweep"]["techniques"]
    view["units"] = {lp.layer: list(lp.units) for lp in layers}
    return view


def _drop_at_default(node: dict[str, Any], default: dict[str, Any], parts: list[str]) -> None:
    """Remove the field at ``parts`` from ``node`` where it equals ``default``'s.

    A ``name[]`` part walks every item of a list; each item is compared with the first item of the
    default list (the fields walked this way have one default for every kind of item), or, where the
    default list is empty (``objective``), with None.
    """
    part, rest = parts[0], parts[1:]
    if not rest:
        if node.get(part) == default.get(part):
            node.pop(part, None)
    elif part.endswith("[]"):
        name = part[:-2]
        for item in node.get(name) or []:
            _drop_at_default(item, (default.get(name) or [{}])[0], rest)
    elif isinstance(node.get(part), dict):
        _drop_at_default(node[part], default[part], rest)


def hash_of(view: dict[str, Any]) -> str:
    """SHA-256 of a canonical JSON text of ``view``."""
    text = json.dumps(view, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_plan(spec: Spec, model: Any, info: Any, device_type: str = "cpu", *, recorded_batch: int | None = None) -> Plan:
    """Resolve a sweep spec against its loaded model: check layers, expand units, cut batches.

    ``sweep.batch: null`` takes ``recorded_batch`` (the batch size of the sweep already in the
    output directory) when given, else the default for ``device_type``.
    """
    from ..hooks import OUTPUT, resolve_layer

    index = sweep_term(spec)
    n_terms = len(spec.objective)
    where = term_path(n_terms, index)
    term = spec.objective[index]
    by_name = term.type in ("logit", "probability")
    layers = term.layer if isinstance(term.layer, list) else [term.layer or OUTPUT]
    for i, t in enumerate(spec.objective):
        for name in t.layer if isinstance(t.layer, list) else [t.layer] if t.layer else []:
            resolve_layer(model, name, field=f"{term_path(n_terms, i)}.layer")
    widths = layer_widths(model, info, layers)
    field_name = f"{where}.units" if term.units is not None else f"{where}.unit"
    raw = term.units if term.units is not None else term.unit
    dirs = _layer_dirs(layers)
    rows = _dictionary_rows(term, where, widths) if term.type == "direction" else None
    plans = []
    for name in layers:
        names = tuple(info.class_names) if by_name and info.class_names else None
        n, shown = (rows[0], f"the rows of {term.vector_file}") if rows else (widths[name], None)
        units = expand_units(raw, field_name, name, n, names, by_name=by_name, shown=shown)
        plans.append(LayerPlan(name, dirs[name], n, units, names))
    size = spec.sweep.batch or recorded_batch or default_batch(device_type)
    view = hashed_view(spec, plans, size)
    if rows:  # the dictionary's content, not its path: a sweep moved with its dictionary resumes
        view["vector_file_sha256"] = rows[1]
        view["objective"][index].pop("vector_file", None)
    techniques = techniques_of(spec, index)
    for i, t in enumerate(techniques):
        if t.layer is not None:
            resolve_layer(model, t.layer, field=f"sweep.techniques[{i}].layer")
    return Plan(spec, index, plans, size, plan_batches(plans, size, techniques), hash_of(view), view, techniques)


def _dictionary_rows(term: Any, where: str, widths: dict[str, int]) -> tuple[int, str]:
    """A direction sweep's dictionary: its number of rows (the units) and its sha256, checked against
    the layers' widths."""
    from ..directions.matrix import check_width, load_dictionary
    from ..outputs import sha256_file

    field = f"{where}.vector_file"
    m = load_dictionary(term.vector_file, key=term.vector_key, field=field)
    for layer, width in widths.items():
        check_width(m, width, layer, term.vector_file, field)
    return int(m.shape[0]), sha256_file(term.vector_file)


def _layer_dirs(layers: list[str]) -> dict[str, str]:
    """A distinct directory name per layer: the sanitized name, with a short hash if two collide."""
    from ..hooks import OUTPUT

    dirs: dict[str, str] = {}
    for name in layers:
        d = "output" if name == OUTPUT else sanitize_filename(name)
        if d in dirs.values():
            d = f"{d}-{sha256_bytes(name.encode())[:8]}"
        dirs[name] = d
    return dirs


def parse_shard(text: str) -> tuple[int, int]:
    """``'I/N'`` -> (I, N) with 0 <= I < N; ``SpecError`` naming ``--shard`` otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise SpecError("--shard", f"{text!r} is not I/N (e.g. 0/4: the first of 4 shards, numbered from 0).")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or i >= n:
        raise SpecError("--shard", f"{text!r}: I must be in 0..N-1 (shards are numbered from 0, e.g. 0/4 .. 3/4).")
    return i, n


def parse_devices(text: str | None, default: str) -> list[str]:
    """Worker devices from ``--devices``: a comma-separated list, or ``auto`` (every CUDA device, else one).

    Without ``--devices`` the sweep runs in this process on ``default`` (the spec's device).
    """
    if text is None:
        return [default]
    if text.strip() == "auto":
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{i}" for i in range(n)] or [default]
    items = [d.strip() for d in text.split(",") if d.strip()]
    if not items:
        raise SpecError("--devices", "is empty; give e.g. cuda:0,cuda:1, cpu,cpu or auto.")
    for d in items:
        if not _DEVICE.match(d):
            raise SpecError("--devices", f"{d!r} is not a device; use cpu, cuda, cuda:N or mps (comma-separated), or auto.")
    return items
