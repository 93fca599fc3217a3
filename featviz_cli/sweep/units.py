"""Per-unit files: ``units/<layer>/<unit>.png`` (and snapshots), then ``<unit>.json``.

Every unit is saved as its own files, PNG(s) first and its JSON LAST, each atomically.
A unit is done when its JSON is the run's and every file the JSON lists has the size and
sha256 recorded in it; a sweep killed at any moment, or a directory damaged later (a
truncated copy, a flipped byte, a deleted file), resumes by re-rendering exactly the
units that are not done.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..outputs import atomic_write_json, ensure_dir, record_problem, safe_join, write_png
from .layout import UNITS_DIR
from .plan import LayerPlan

DONE, PENDING, CORRUPT = "done", "pending", "corrupt"
# A unit's image, its other images (_1, _2: K diverse renders), their snapshots, and maps (_alpha).
_OWN_SUFFIX = re.compile(r"(_\d{1,3})?(_step\d{5,})?(_[a-z]+)?\.png")


@dataclass(frozen=True)
class UnitState:
    """What a unit's files say: ``done``, ``pending`` (no JSON) or ``corrupt`` (``problem`` says why)."""

    status: str
    record: dict[str, Any] | None = None  # the unit's JSON, where it is the run's
    problem: str = ""


def unit_stem(unit: int) -> str:
    """The file stem of a unit: its index, zero-padded (``00005``)."""
    return f"{unit:05d}"


def unit_rel(lp: LayerPlan, unit: int, suffix: str = ".json") -> str:
    """A unit's file relative to OUT: ``units/<layer dir>/<stem><suffix>``."""
    return f"{UNITS_DIR}/{lp.dir}/{unit_stem(unit)}{suffix}"


def snapshot_suffix(step: int) -> str:
    """The suffix of a unit's snapshot at ``step``: ``_step00032.png``."""
    return f"_step{step:05d}.png"


def image_suffix(k: int) -> str:
    """The suffix of a unit's image ``k`` (of K diverse renders): ``''`` for the first, ``_1``, ``_2``, ..."""
    return f"_{k}" if k else ""


_FILE_PARTS = re.compile(r"\d+(?:_(\d{1,3}))?(?:_step(\d{5,}))?(?:_([a-z]+))?\.png")


def file_kind(rel: str) -> tuple[int, int | None, str | None]:
    """What a unit's file is, from its name: (image index k, snapshot step or None, map name or None);
    ``00005_1_step00032.png`` -> (1, 32, None), ``00005_alpha.png`` -> (0, None, 'alpha')."""
    m = _FILE_PARTS.fullmatch(rel.rsplit("/", 1)[-1])
    if m is None:
        return 0, None, None
    k, step, name = m.groups()
    return int(k or 0), int(step) if step else None, name


def check_unit(out: Path, lp: LayerPlan, unit: int, spec_hash: str) -> UnitState:
    """The state of a unit: done only if its JSON parses, has the run's hash, and every file it lists
    is the unit's own and has the recorded size and sha256 (each file is read and hashed)."""
    rel = unit_rel(lp, unit)
    try:
        text = (out / rel).read_bytes()
    except FileNotFoundError:
        return UnitState(PENDING)
    except OSError as err:
        return UnitState(CORRUPT, None, f"{rel} cannot be read ({err.strerror})")
    try:
        record = json.loads(text)
        files, image = record["files"], record["image"]
        if not isinstance(files, dict) or image not in files:
            raise ValueError(image)
    except (ValueError, KeyError, TypeError):
        return UnitState(CORRUPT, None, f"{rel} is not a unit record")
    if record.get("spec_hash") != spec_hash:
        return UnitState(CORRUPT, None, f"{rel} belongs to another spec")
    own = unit_rel(lp, unit, "")
    for name, expected in files.items():
        problem = _file_problem(out, name, expected, own)
        if problem:
            return UnitState(CORRUPT, record, f"{name} {problem}")
    return UnitState(DONE, record)


def _file_problem(out: Path, name: Any, expected: Any, own: str) -> str:
    """What is wrong with one file a unit's JSON lists ('' if nothing): not the unit's, missing, other size,
    other hash."""
    if not isinstance(name, str) or not name.startswith(own) or not _OWN_SUFFIX.fullmatch(name[len(own):]):
        return "is not one of the unit's own files"
    return record_problem(out / name, expected)


def read_unit(out: Path, lp: LayerPlan, unit: int, spec_hash: str) -> dict[str, Any] | None:
    """The unit's record if it is done for this run (see ``check_unit``); else None (it is to be rendered)."""
    state = check_unit(out, lp, unit, spec_hash)
    return state.record if state.status == DONE else None


def write_unit(out: Path, lp: LayerPlan, unit: int, image: Any, snapshots: dict[int, Any],
               record: dict[str, Any], *, others: Sequence[tuple[Any, dict[int, Any]]] = (),
               maps: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Write a unit's PNG(s), then its JSON (``record`` plus ``image`` and ``files``) last; return it.

    ``others`` are further images of the unit with their snapshots (K diverse renders: images 1..K-1,
    ``00005_1.png``, ``00005_1_step00032.png``); the JSON then lists all of them under ``images``.
    ``maps[k]`` are maps of image k by name (``{"alpha": heat map}``: ``00005_alpha.png``, ``00005_1_alpha.png``).
    """
    ensure_dir(out, f"{UNITS_DIR}/{lp.dir}")
    files: dict[str, Any] = {}
    images = []
    for k, (picture, snaps) in enumerate([(image, snapshots), *others]):
        rel = unit_rel(lp, unit, image_suffix(k) + ".png")
        files[rel] = write_png(out, rel, picture)
        images.append(rel)
        for step in sorted(snaps):
            snap = unit_rel(lp, unit, image_suffix(k) + snapshot_suffix(step))
            files[snap] = write_png(out, snap, snaps[step])
        for name, picture_map in sorted((maps[k] if k < len(maps) else {}).items()):
            rel_map = unit_rel(lp, unit, f"{image_suffix(k)}_{name}.png")
            files[rel_map] = write_png(out, rel_map, picture_map)
    main = images[0]
    full = {**record, "image": main, **({"images": images} if others else {}), "files": files}
    atomic_write_json(safe_join(out, unit_rel(lp, unit)), full)
    return full
