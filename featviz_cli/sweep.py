"""Sweeps: every unit of one or more layers, rendered in batches, resumable and shardable.

A sweep is planned once the model is loaded (``units: all`` and ranges need the
layer widths): the units of each layer are cut into batches of ``sweep.batch``, one
unit per image, and batch ``b`` belongs to shard ``b % N``. Every unit is saved as
its own files, PNG(s) first and its JSON LAST, each atomically: a unit is done
exactly when its JSON exists, so a sweep killed at any moment resumes by skipping
the done units and redoing the rest. A partly saved batch is optimized again in
full, so a unit's image depends only on the spec, and only its missing units are
written.

Files several processes share (``sweep.json``, ``manifest.json``, contact sheets,
the gallery) are written under an exclusive ``flock`` and rebuilt from the per-unit
files: shards and workers never append to a common file.

Layout of an output directory OUT::

    sweep.json                     the run: hash of the resolved spec, the plan (layers, units)
    units/<layer>/00005.png        one image per unit (+ 00005_step00032.png snapshots)
    units/<layer>/00005.json       written last: the unit is done
    sheets/<layer>/sheet_000.png   contact sheets, ``sweep.page_size`` units each
    manifest.json                  every planned unit: status, files, sha256, objective, timing
    index.html, gallery/...        the static HTML gallery (see ``gallery.py``)
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import queue
import re
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from . import __version__
from .config import SWEEP_BATCH_DEFAULTS, Spec, parse_unit_range, spec_to_dict, term_path
from .errors import FeatvizError, LayerError, OutputError, SpecError
from .outputs import (
    atomic_write_json,
    ensure_dir,
    make_grid,
    png_bytes,
    prepare_output_dir,
    safe_join,
    sanitize_filename,
    sha256_bytes,
    sha256_file,
    to_uint8,
    write_bytes_if_changed,
    write_png,
)

RUN_FILE = "sweep.json"
MANIFEST_FILE = "manifest.json"
UNITS_DIR = "units"
SHEETS_DIR = "sheets"
ARCHIVE_DIR = "archive"
LOCK_FILE = ".featviz.lock"
SWEEPABLE = ("channel", "neuron", "logit", "probability")
#: Fields of the spec that do not change a unit's image, left out of the run's hash.
UNHASHED = ("device", "output", "name")
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


class SweepProgress(Protocol):
    """Progress of a sweep: ``__call__`` for the current batch's steps, ``units`` for the whole sweep."""

    def __call__(self, done: int, total: int, value: float) -> None: ...

    def units(self, done: int, total: int) -> None: ...


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class LayerPlan:
    """The units a sweep renders for one layer, and where their files go."""

    layer: str
    dir: str
    channels: int
    units: tuple[int, ...]
    names: tuple[str, ...] | None = None  # class names, for logit/probability sweeps

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

    def layer(self, name: str) -> LayerPlan:
        """The plan of layer ``name``."""
        return next(lp for lp in self.layers if lp.layer == name)

    @property
    def total(self) -> int:
        """Number of units in the whole sweep."""
        return sum(len(lp.units) for lp in self.layers)


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
    for i, t in enumerate(spec.objective):
        if t.batch is not None:
            raise SpecError(f"{term_path(n, i)}.batch", "every image of a sweep has its own unit; remove 'batch'.")
    if spec.param.batch is not None:
        raise SpecError("param.batch", "a sweep sets its batch size with sweep.batch; remove param.batch.")
    return cands[0]


def layer_widths(model: Any, info: Any, layers: Iterable[str]) -> dict[str, int]:
    """Units (channels, or classes at the output) of each layer, from one forward pass of zeros."""
    import torch

    from .hooks import LayerInfo, forward_to

    names = list(dict.fromkeys(layers))
    param = next(iter(model.parameters()), None)
    x = torch.zeros(1, 3, info.input_size, info.input_size, device=param.device if param is not None else "cpu")
    with torch.no_grad():
        acts = forward_to(model.eval(), x, names)
    return {name: int(LayerInfo(name, "", tuple(acts[name].shape[1:])).channels or 1) for name in names}


def expand_units(raw: int | str | list[int | str] | None, field: str, layer: str, n: int,
                 names: tuple[str, ...] | None, *, by_name: bool) -> tuple[int, ...]:
    """The unit indices a term asks for in a layer of ``n`` units; errors name ``field``."""
    from .objectives import resolve_class

    shown = "the output" if layer.startswith("<") else f"layer {layer!r}"
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
    dup = next((u for u in units if units.count(u) > 1), None)
    if dup is not None:
        raise SpecError(field, f"unit {dup} is listed twice; list each unit once.")
    return tuple(units)


def plan_batches(layers: list[LayerPlan], size: int) -> list[Batch]:
    """Cut each layer's units into batches of at most ``size``, numbered across the sweep."""
    batches: list[Batch] = []
    for lp in layers:
        for k in range(0, len(lp.units), size):
            batches.append(Batch(len(batches), lp.layer, lp.units[k : k + size]))
    return batches


def shard_batches(batches: list[Batch], shard: int, count: int) -> list[Batch]:
    """The batches of shard ``shard`` of ``count``: every ``count``-th, a deterministic disjoint split."""
    return [b for b in batches if b.index % count == shard]


def default_batch(device_type: str) -> int:
    """Units per batch when ``sweep.batch`` is null, by device type (``SWEEP_BATCH_DEFAULTS``)."""
    return SWEEP_BATCH_DEFAULTS.get(device_type, SWEEP_BATCH_DEFAULTS["cpu"])


def hashed_view(spec: Spec, layers: list[LayerPlan], batch_size: int) -> dict[str, Any]:
    """What the run's hash covers: the spec without ``UNHASHED`` fields, the batch size and every unit."""
    view = spec_to_dict(spec)
    for key in UNHASHED:
        view.pop(key, None)
    view["sweep"] = {"batch": batch_size}
    view["units"] = {lp.layer: list(lp.units) for lp in layers}
    return view


def hash_of(view: dict[str, Any]) -> str:
    """SHA-256 of a canonical JSON text of ``view``."""
    text = json.dumps(view, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_plan(spec: Spec, model: Any, info: Any, device_type: str = "cpu", *, recorded_batch: int | None = None) -> Plan:
    """Resolve a sweep spec against its loaded model: check layers, expand units, cut batches.

    ``sweep.batch: null`` takes ``recorded_batch`` (the batch size of the sweep already in the
    output directory) when given, else the default for ``device_type``.
    """
    from .hooks import OUTPUT, resolve_layer

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
    plans = []
    for name in layers:
        names = tuple(info.class_names) if by_name and info.class_names else None
        units = expand_units(raw, field_name, name, widths[name], names, by_name=by_name)
        plans.append(LayerPlan(name, dirs[name], widths[name], units, names))
    size = spec.sweep.batch or recorded_batch or default_batch(device_type)
    view = hashed_view(spec, plans, size)
    return Plan(spec, index, plans, size, plan_batches(plans, size), hash_of(view), view)


def _layer_dirs(layers: list[str]) -> dict[str, str]:
    """A distinct directory name per layer: the sanitized name, with a short hash if two collide."""
    from .hooks import OUTPUT

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


# ---------------------------------------------------------------- the run record and the lock


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``OUT/.featviz.lock``; yields False where locks are unsupported.

    The kernel drops the lock when its holder dies (also by SIGKILL).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield False
        return
    try:
        fd = os.open(safe_join(out, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise OutputError(f"cannot open the lock file in {out}: {err.strerror}; check that it is writable") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            locked = True
        except OSError:  # e.g. a network filesystem without locks
            locked = False
        yield locked
    finally:
        os.close(fd)


def read_record(out: Path) -> dict[str, Any] | None:
    """The ``sweep.json`` of ``out``, or None if there is none."""
    path = Path(out) / RUN_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise OutputError(f"cannot read {path}: {err.strerror}; check its permissions") from err
    try:
        record = json.loads(text)
        if not isinstance(record, dict) or "spec_hash" not in record or "layers" not in record:
            raise ValueError("not a sweep record")
    except ValueError:
        raise OutputError(f"{path} is not a featviz sweep record; remove it or choose another --out") from None
    return record


def run_record(plan: Plan, info: Any) -> dict[str, Any]:
    """The content of ``sweep.json`` for a plan."""
    return {
        "featviz": __version__,
        "spec_hash": plan.spec_hash,
        "created": _now(),
        "model": {"name": info.name, "weights": info.weights, "input_size": info.input_size},
        "batch_size": plan.batch_size,
        "batches": len(plan.batches),
        "total": plan.total,
        "page_size": plan.spec.sweep.page_size,
        "layers": [
            {"layer": lp.layer, "dir": lp.dir, "channels": lp.channels, "units": list(lp.units),
             "names": list(lp.names) if lp.names is not None else None}
            for lp in plan.layers
        ],
        "hashed": plan.hashed,
        "spec": spec_to_dict(plan.spec),
    }


def layers_of(record: dict[str, Any]) -> list[LayerPlan]:
    """The layer plans stored in a ``sweep.json`` record."""
    return [
        LayerPlan(d["layer"], d["dir"], int(d["channels"]), tuple(d["units"]),
                  tuple(d["names"]) if d.get("names") is not None else None)
        for d in record["layers"]
    ]


def open_run(out: Path, plan: Plan, info: Any, record: dict[str, Any] | None, *, new_run: bool) -> dict[str, Any]:
    """Create ``sweep.json``, or check that the one there has this plan's hash (call under ``run_lock``).

    A different hash refuses, naming the fields that differ, unless ``new_run``: then the old
    sweep is moved to ``OUT/archive/<hash>/`` first.
    """
    if record is not None and record["spec_hash"] != plan.spec_hash:
        if not new_run:
            diff = describe_diff(record.get("hashed", {}), plan.hashed)
            raise SpecError("", f"{out} already holds a sweep of a different spec ({diff}); rerun with the same "
                            f"spec to resume it, choose another --out, or add --new-run to move it to "
                            f"{out / ARCHIVE_DIR / record['spec_hash'][:12]} and start this one.")
        archive_run(out, record)
        record = None
    if record is None:
        record = run_record(plan, info)
        atomic_write_json(safe_join(out, RUN_FILE), record)
    return record


def describe_diff(old: dict[str, Any], new: dict[str, Any], limit: int = 3) -> str:
    """The first fields that differ between two hashed views, as ``key: old -> new``."""
    a, b = _flatten(old), _flatten(new)
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    parts = [f"{k}: {_short(a.get(k))} -> {_short(b.get(k))}" for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"{len(keys) - limit} more")
    return "; ".join(parts) or "its record differs"


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(d, list) and d and all(isinstance(x, dict) for x in d):
        out = {}
        for i, v in enumerate(d):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: d}


def _short(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def archive_run(out: Path, record: dict[str, Any]) -> Path:
    """Move a sweep's files (not ``examples/``) to ``OUT/archive/<hash>/``; return that directory."""
    from .gallery import GALLERY_DIR, INDEX_FILE

    base = ensure_dir(out, ARCHIVE_DIR)
    dest = base / record["spec_hash"][:12]
    k = 1
    while dest.exists():
        k += 1
        dest = base / f"{record['spec_hash'][:12]}-{k}"
    dest.mkdir()
    for name in (UNITS_DIR, SHEETS_DIR, GALLERY_DIR, MANIFEST_FILE, INDEX_FILE, RUN_FILE):
        src = out / name
        if src.exists():
            try:
                os.replace(src, dest / name)
            except OSError as err:
                raise OutputError(f"cannot move {src} to {dest}: {err.strerror}; move it away yourself") from err
    return dest


# ---------------------------------------------------------------- per-unit files


def unit_stem(unit: int) -> str:
    """The file stem of a unit: its index, zero-padded (``00005``)."""
    return f"{unit:05d}"


def unit_rel(lp: LayerPlan, unit: int, suffix: str = ".json") -> str:
    """A unit's file relative to OUT: ``units/<layer dir>/<stem><suffix>``."""
    return f"{UNITS_DIR}/{lp.dir}/{unit_stem(unit)}{suffix}"


def snapshot_suffix(step: int) -> str:
    """The suffix of a unit's snapshot at ``step``: ``_step00032.png``."""
    return f"_step{step:05d}.png"


def read_unit(out: Path, lp: LayerPlan, unit: int, spec_hash: str) -> dict[str, Any] | None:
    """The unit's record if it is done for this run: its JSON parses, has the run's hash, and its
    image exists with the recorded size; else None (the unit is to be rendered)."""
    try:
        record = json.loads((out / unit_rel(lp, unit)).read_text(encoding="utf-8"))
        if record.get("spec_hash") != spec_hash:
            return None
        image = record["image"]
        if (out / image).stat().st_size != record["files"][image]["bytes"]:
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return record


def remove_temps(directory: Path, prefix: str) -> None:
    """Delete leftover ``.<prefix>*.tmp`` files (from a write killed midway) in ``directory``."""
    for tmp in directory.glob(f".{prefix}*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_unit(out: Path, lp: LayerPlan, unit: int, image: Any, snapshots: dict[int, Any],
               record: dict[str, Any]) -> dict[str, Any]:
    """Write a unit's PNG(s), then its JSON (``record`` plus ``image`` and ``files``) last; return it."""
    directory = ensure_dir(out, f"{UNITS_DIR}/{lp.dir}")
    remove_temps(directory, unit_stem(unit))
    files: dict[str, Any] = {}
    main = unit_rel(lp, unit, ".png")
    files[main] = write_png(out, main, image)
    for step in sorted(snapshots):
        rel = unit_rel(lp, unit, snapshot_suffix(step))
        files[rel] = write_png(out, rel, snapshots[step])
    full = {**record, "image": main, "files": files}
    atomic_write_json(safe_join(out, unit_rel(lp, unit)), full)
    return full


# ---------------------------------------------------------------- rendering batches


def batch_spec(plan: Plan, batch: Batch, device: str) -> Spec:
    """The plain render spec of one batch: the swept term with this batch's layer and unit list."""
    from .hooks import OUTPUT

    spec = copy.deepcopy(plan.spec)
    term = spec.objective[plan.term]
    term.layer = None if batch.layer == OUTPUT else batch.layer
    term.unit, term.units = None, list(batch.units)
    spec.param.batch = None
    spec.device = device
    return spec


@dataclass
class Worker:
    """Who renders: the shard and worker written into each unit's record."""

    shard: str = "0/1"
    index: int = 0


def render_batch(plan: Plan, batch: Batch, out: Path, model: Any, info: Any, device: str, *,
                 progress: Callable[[int, int, float], None] | None = None,
                 worker: Worker | None = None) -> list[int]:
    """Optimize one batch and write its units that are not done yet; return the units written."""
    from .engine import render

    lp = plan.layer(batch.layer)
    todo = [u for u in batch.units if read_unit(out, lp, u, plan.spec_hash) is None]
    if not todo:
        return []
    worker = worker or Worker()
    result = render(batch_spec(plan, batch, device), model=model, info=info, progress=progress)
    images = to_uint8(result.images.permute(0, 2, 3, 1))
    snaps = {k: to_uint8(v.permute(0, 2, 3, 1)) for k, v in result.snapshots.items()}
    term = plan.spec.objective[plan.term]
    for pos, unit in enumerate(batch.units):
        if unit not in todo:
            continue
        record = {
            "featviz": __version__,
            "spec_hash": plan.spec_hash,
            "layer": lp.layer,
            "unit": unit,
            "label": lp.label(unit),
            "type": term.type,
            "objective": result.values[pos],
            "steps": result.steps,
            "seed": plan.spec.seed,
            "size": plan.spec.param.size,
            "device": result.device,
            "precision": result.precision,
            "time_s": round(result.timings["optimize_s"] / len(batch.units), 4),
            "batch": {"index": batch.index, "position": pos, "units": list(batch.units),
                      "optimize_s": result.timings["optimize_s"], "step_ms": result.timings["step_ms"]},
            "shard": worker.shard,
            "worker": worker.index,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "finished": _now(),
        }
        write_unit(out, lp, unit, images[pos], {k: v[pos] for k, v in snaps.items()}, record)
    return todo


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- running a sweep


@dataclass
class SweepReport:
    """What a sweep run did."""

    out: Path
    spec_hash: str
    planned: int
    total: int
    done_before: int
    rendered: list[tuple[str, int]] = field(default_factory=list)
    interrupted: bool = False
    failures: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    index: Path | None = None
    devices: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        """Units of this shard done now."""
        return self.done_before + len(self.rendered)


class StopFlag:
    """Set when the sweep should stop after the current batch (the first Ctrl-C)."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested


@contextlib.contextmanager
def interrupt_guard(notice: Callable[[str], None]) -> Iterator[StopFlag]:
    """First Ctrl-C: finish and save the current batch, then stop; the second stops at once.

    Either way finished units stay complete (atomic files). A no-op outside the main thread.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(_signum: int, _frame: object) -> None:
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True
        notice("Stopping after the current batch is saved (Ctrl-C again to stop now).")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def run_sweep(spec: Spec, out: str | Path | None = None, *, shard: tuple[int, int] = (0, 1),
              devices: list[str] | None = None, new_run: bool = False, progress: SweepProgress | None = None,
              stop: Callable[[], bool] | None = None, build_gallery: bool = True) -> SweepReport:
    """Render every unit of the spec's sweep term that this shard owns into ``out`` and rebuild its outputs.

    Resumes what ``out`` already holds for the same spec; refuses a different spec unless
    ``new_run``. With several ``devices``, one worker process per device shares the batches.
    ``stop()`` is polled between batches.
    """
    from .engine import pick_device
    from .models import load_model

    t0 = time.perf_counter()
    sweep_term(spec)  # spec errors before any model is loaded
    out = prepare_output_dir(Path(out or spec.output.dir))
    devices = devices or [spec.device]
    device_type = pick_device(devices[0]).type
    model, info = load_model(spec.model)
    with run_lock(out):
        existing = read_record(out)
        recorded = existing.get("batch_size") if existing and not new_run else None
        plan = make_plan(spec, model, info, device_type, recorded_batch=recorded)
        open_run(out, plan, info, existing, new_run=new_run)
    mine = shard_batches(plan.batches, *shard)
    report = SweepReport(out, plan.spec_hash, plan.total, sum(len(b.units) for b in mine), 0, devices=devices)
    pending = []
    for b in mine:
        lp = plan.layer(b.layer)
        done = sum(read_unit(out, lp, u, plan.spec_hash) is not None for u in b.units)
        report.done_before += done
        if done < len(b.units):
            pending.append(b)
    if progress is not None:
        progress.units(report.done, report.total)
    stop = stop or (lambda: False)
    label = f"{shard[0]}/{shard[1]}"
    if len(devices) == 1:
        for b in pending:
            if stop():
                break
            written = render_batch(plan, b, out, model, info, devices[0], progress=progress, worker=Worker(label))
            report.rendered += [(b.layer, u) for u in written]
            if progress is not None:
                progress.units(report.done, report.total)
    else:
        del model  # each worker loads its own
        _run_workers(plan, pending, out, devices, label, report, progress, stop)
    report.interrupted = stop() and report.done < report.total
    if build_gallery:
        report.index = rebuild(out, page_size=spec.sweep.page_size).index
    report.elapsed_s = time.perf_counter() - t0
    return report


def _run_workers(plan: Plan, pending: list[Batch], out: Path, devices: list[str], shard: str,
                 report: SweepReport, progress: SweepProgress | None, stop: Callable[[], bool]) -> None:
    """Share ``pending`` among one spawned process per device; events come back on a queue."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    tasks, events = ctx.Queue(), ctx.Queue()
    start, halt = ctx.Event(), ctx.Event()
    for b in pending:
        tasks.put(b.index)
    for _ in devices:
        tasks.put(None)
    n_cpu = sum(d == "cpu" for d in devices)
    threads = max(1, (os.cpu_count() or 1) // max(1, n_cpu))
    procs = [ctx.Process(target=_worker_main, name=f"featviz-worker-{w}", daemon=True,
                         args=(w, d, plan, str(out), shard, tasks, events, start, halt,
                               threads if d == "cpu" else 0, os.getpid()))
             for w, d in enumerate(devices)]
    for p in procs:
        p.start()
    ready, errors, reported = 0, [], set()
    try:
        while True:
            if stop() and not halt.is_set():
                halt.set()
            try:
                ev = events.get(timeout=0.2)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    break
                if ready + sum(not p.is_alive() for p in procs) >= len(procs):
                    start.set()  # a worker died before it was ready: let the others go
                continue
            kind, w = ev[0], ev[1]
            if kind == "ready":
                ready += 1
                if ready == len(procs):
                    start.set()
            elif kind == "steps" and progress is not None:
                progress(*ev[2:])
            elif kind == "batch":
                report.rendered += [(ev[2], u) for u in ev[3]]
                if progress is not None:
                    progress.units(report.done, report.total)
            elif kind == "error":
                errors.append((w, ev[2], ev[3]))
                reported.add(w)
                halt.set()
                start.set()
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(10)
            if p.is_alive():  # pragma: no cover - a worker stuck in native code
                p.kill()
    if errors:
        w, message, code = errors[0]
        error = FeatvizError(f"worker {w} ({devices[w]}): {message}")
        error.exit_code = code
        raise error
    for w, p in enumerate(procs):
        if p.exitcode not in (0, None) and w not in reported:
            report.failures.append(f"worker {w} ({devices[w]}) died with exit code {p.exitcode}")


def _worker_main(w: int, device: str, plan: Plan, out: str, shard: str, tasks: Any, events: Any,
                 start: Any, halt: Any, threads: int, parent: int) -> None:
    """A worker process: load the model once, then render batches from ``tasks`` until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides; see interrupt_guard
    signal.signal(signal.SIGTERM, _exit_on_signal)
    _die_with_parent()
    try:
        import torch

        from .models import load_model

        if threads:
            torch.set_num_threads(threads)
        model, info = load_model(plan.spec.model)
        events.put(("ready", w))
        while not start.wait(1.0):
            _check_parent(parent)
        last = [0.0]

        def steps(done: int, total: int, value: float) -> None:
            _check_parent(parent)
            now = time.monotonic()
            if done == total or now - last[0] >= 0.5:
                last[0] = now
                events.put(("steps", w, done, total, value))

        while not halt.is_set():
            index = tasks.get()
            if index is None:
                break
            batch = plan.batches[index]
            written = render_batch(plan, batch, Path(out), model, info, device, progress=steps,
                                   worker=Worker(shard, w))
            events.put(("batch", w, batch.layer, written))
    except FeatvizError as e:
        events.put(("error", w, str(e), e.exit_code))
    except Exception as e:  # noqa: BLE001 - reported to the coordinator in one line
        events.put(("error", w, f"unexpected {type(e).__name__}: {e}", 1))


def _exit_on_signal(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def _check_parent(parent: int) -> None:
    """Exit if the coordinator is gone (killed): nobody would hand out work or collect events."""
    if os.getppid() != parent:
        raise SystemExit(1)


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the coordinator dies (even by SIGKILL); elsewhere a no-op."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# ---------------------------------------------------------------- manifest, contact sheets, gallery


@dataclass
class Rebuilt:
    """What ``rebuild`` wrote."""

    index: Path
    manifest: dict[str, Any]


def collect_units(out: Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    """One manifest entry per planned unit, from the per-unit files: status done, pending or corrupt.

    A done unit's image is checked against the sha256 in its JSON.
    """
    entries = []
    for lp in layers_of(record):
        for unit in lp.units:
            entry: dict[str, Any] = {"layer": lp.layer, "unit": unit, "label": lp.label(unit), "status": "pending",
                                     "meta": unit_rel(lp, unit), "image": None}
            meta = read_unit(out, lp, unit, record["spec_hash"])
            if meta is not None:
                entry.update(_entry_from(out, meta))
            entries.append(entry)
    return entries


def _entry_from(out: Path, meta: dict[str, Any]) -> dict[str, Any]:
    image = meta["image"]
    ok = all(_sha_ok(out / rel, rec.get("sha256")) for rel, rec in meta["files"].items())
    snaps = sorted(rel for rel in meta["files"] if rel != image)
    return {
        "status": "done" if ok else "corrupt",
        "image": image,
        "sha256": meta["files"][image]["sha256"],
        "width": meta["files"][image].get("width"),
        "height": meta["files"][image].get("height"),
        "snapshots": snaps,
        "objective": meta.get("objective"),
        "time_s": meta.get("time_s"),
        "steps": meta.get("steps"),
        "device": meta.get("device"),
        "batch": meta.get("batch", {}).get("index"),
        "shard": meta.get("shard"),
        "worker": meta.get("worker"),
        "finished": meta.get("finished"),
    }


def _sha_ok(path: Path, expected: str | None) -> bool:
    try:
        return sha256_file(path) == expected
    except OutputError:
        return False


def sheet_rel(lp: LayerPlan, page: int) -> str:
    """A layer's contact sheet ``page`` relative to OUT."""
    return f"{SHEETS_DIR}/{lp.dir}/sheet_{page:03d}.png"


def write_sheets(out: Path, lp: LayerPlan, entries: list[dict[str, Any]], page_size: int) -> list[str | None]:
    """Write the labelled contact sheets of one layer, ``page_size`` units each (pending units grey).

    Returns one path per page, None for a page with no finished unit yet.
    """
    import numpy as np
    from PIL import Image

    sheets: list[str | None] = []
    for p in range(0, len(entries), page_size):
        page = entries[p : p + page_size]
        images, labels = [], []
        for e in page:
            arr = None
            if e["status"] == "done":
                with contextlib.suppress(OSError, ValueError), Image.open(out / e["image"]) as im:
                    arr = np.asarray(im.convert("RGB"))
            images.append(arr)
            labels.append(e["label"] if arr is not None else f"{e['unit']} {e['status']}")
        shapes = [a.shape for a in images if a is not None]
        if not shapes:
            sheets.append(None)
            continue
        blank = np.full(shapes[0], 200, dtype=np.uint8)
        grid = make_grid(np.stack([a if a is not None and a.shape == shapes[0] else blank for a in images]), labels)
        rel = sheet_rel(lp, p // page_size)
        ensure_dir(out, f"{SHEETS_DIR}/{lp.dir}")
        write_bytes_if_changed(safe_join(out, rel), png_bytes(grid))
        sheets.append(rel)
    return sheets


def rebuild(out: str | Path, *, page_size: int | None = None) -> Rebuilt:
    """Rebuild the manifest, contact sheets and gallery of ``out`` from its per-unit files.

    Runs under the directory's lock, so shards finishing together take turns; leftover
    temporary files of shared files and of done units are removed.
    """
    from . import gallery

    out = Path(out).resolve()
    with run_lock(out) as locked:
        record = read_record(out)
        if record is None:
            raise OutputError(f"{out} has no {RUN_FILE}: it is not a sweep output directory; "
                              "give the --out of a 'featviz sweep' run")
        size = page_size or _last_page_size(out) or int(record.get("page_size") or 64)
        entries = collect_units(out, record)
        layers = layers_of(record)
        by_layer = {lp.layer: [e for e in entries if e["layer"] == lp.layer] for lp in layers}
        for lp in layers:
            examples = gallery.load_examples(out, lp.layer)
            for e in by_layer[lp.layer]:
                e["examples"] = gallery.shown_examples(out, lp.layer, examples, e["unit"])
        summaries = []
        sheet_files = set()
        for lp in layers:
            sheets = write_sheets(out, lp, by_layer[lp.layer], size)
            sheet_files.update(s for s in sheets if s)
            rows = by_layer[lp.layer]
            summaries.append({"layer": lp.layer, "dir": lp.dir, "channels": lp.channels, "units": len(rows),
                              "done": sum(e["status"] == "done" for e in rows), "sheets": sheets})
        counts = {s: sum(e["status"] == s for e in entries) for s in ("done", "pending", "corrupt")}
        manifest = {
            "featviz": __version__,
            "spec_hash": record["spec_hash"],
            "model": record.get("model"),
            "created": record.get("created"),
            "updated": _now(),
            "total": len(entries),
            **counts,
            "page_size": size,
            "layers": summaries,
            "units": entries,
        }
        pages = gallery.write_gallery(out, record, manifest)
        if locked:
            _remove_stale(out, SHEETS_DIR, sheet_files)
            _remove_stale(out, gallery.GALLERY_DIR, set(pages))
            _remove_shared_temps(out, entries, layers)
        atomic_write_json(safe_join(out, MANIFEST_FILE), manifest)
    return Rebuilt(out / gallery.INDEX_FILE, manifest)


def _last_page_size(out: Path) -> int | None:
    """The page size the last rebuild used (from ``manifest.json``), if any."""
    try:
        value = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8")).get("page_size")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and value > 0 else None


def _remove_stale(out: Path, top: str, keep: set[str]) -> None:
    """Delete files under ``out/top`` that this rebuild did not write (e.g. pages of an old page size)."""
    root = out / top
    if not root.is_dir():
        return
    for path in root.rglob("*"):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and rel not in keep:
            with contextlib.suppress(OSError):
                path.unlink()


def _remove_shared_temps(out: Path, entries: list[dict[str, Any]], layers: list[LayerPlan]) -> None:
    """Delete temp files left by killed writers of shared files, and of units that are done."""
    from .gallery import INDEX_FILE

    for name in (RUN_FILE, MANIFEST_FILE, INDEX_FILE):
        remove_temps(out, name + ".")
    for tmp in out.glob(".featviz-write-test.*.tmp"):  # prepare_output_dir's probe, killed midway
        with contextlib.suppress(OSError):
            if time.time() - tmp.stat().st_mtime > 60:
                tmp.unlink()
    dirs = {lp.layer: out / UNITS_DIR / lp.dir for lp in layers}
    for e in entries:
        if e["status"] == "done":
            remove_temps(dirs[e["layer"]], unit_stem(e["unit"]))
