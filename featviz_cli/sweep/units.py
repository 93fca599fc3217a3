"""Per-unit files: ``units/<layer>/<unit>.png`` (and snapshots), then ``<unit>.json``.

Every unit is saved as its own files, PNG(s) first and its JSON LAST, each atomically:
a unit is done exactly when its JSON exists, so a sweep killed at any moment resumes by
skipping the done units and redoing the rest.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from ..outputs import atomic_write_json, ensure_dir, safe_join, write_png
from .layout import UNITS_DIR
from .plan import LayerPlan


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
