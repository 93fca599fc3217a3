"""The run record ``OUT/sweep.json`` and the lock on OUT.

``sweep.json`` holds the hash of the resolved spec and the plan; a rerun with the same
spec resumes, a different spec is refused or, with ``new_run``, archived first. Files
several processes share are written under the exclusive ``flock`` of ``run_lock``.
"""
from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .. import __version__
from ..config import spec_to_dict
from ..errors import InputError, OutputError, SpecError
from ..outputs import atomic_write_json, ensure_dir, safe_join
from .layout import ARCHIVE_DIR, LOCK_FILE, MANIFEST_FILE, RUN_FILE, SHEETS_DIR, UNITS_DIR
from .plan import LayerPlan, Plan
from .techniques import Technique, from_record


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


def require_record(out: Path, needs: str = "") -> dict[str, Any]:
    """The ``sweep.json`` of ``out``; ``InputError`` naming ``out`` and the fix where it has none
    (``needs``: what else the command wants in that directory, appended to the message)."""
    record = read_record(out)
    if record is None:
        raise InputError(f"{out} has no {RUN_FILE}: it is not a sweep output directory; give the --out of a "
                         f"'featviz sweep' run{needs}")
    return record


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
    """The content of ``sweep.json`` for a plan (``techniques`` only where the sweep has them)."""
    record = {
        "featviz": __version__,
        "spec_hash": plan.spec_hash,
        "created": utc_now(),
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
    if plan.techniques:
        record["techniques"] = [t.record() for t in plan.techniques]
    return record


def layers_of(record: dict[str, Any]) -> list[LayerPlan]:
    """The layer plans stored in a ``sweep.json`` record."""
    return [
        LayerPlan(d["layer"], d["dir"], int(d["channels"]), tuple(d["units"]),
                  tuple(d["names"]) if d.get("names") is not None else None)
        for d in record["layers"]
    ]


def techniques_in(record: dict[str, Any]) -> tuple[Technique, ...]:
    """The techniques a ``sweep.json`` record lists; () for a sweep without them."""
    return tuple(from_record(d) for d in record.get("techniques") or [])


def unit_layers(record: dict[str, Any]) -> list[LayerPlan]:
    """Every directory of unit files a record plans: its layers, each once per technique (layer by layer)."""
    techniques = techniques_in(record)
    layers = layers_of(record)
    if not techniques:
        return layers
    return [lp.rendered_by(t) for lp in layers for t in techniques]


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


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second: when a record was written."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
