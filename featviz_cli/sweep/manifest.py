"""The shared files of a sweep: ``manifest.json``, contact sheets and the HTML gallery.

They are written under the exclusive ``flock`` of ``run_lock`` and rebuilt from the
per-unit files: shards and workers never append to a common file.
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import OutputError
from ..outputs import (
    atomic_write_json,
    ensure_dir,
    make_grid,
    png_bytes,
    remove_temps,
    safe_join,
    sha256_bytes,
    sha256_file,
    write_bytes_if_changed,
)
from .layout import MANIFEST_FILE, RUN_FILE, SHEETS_DIR, UNITS_DIR
from .plan import LayerPlan
from .record import require_record, run_lock, unit_layers, utc_now
from .units import CORRUPT, DONE, PENDING, check_unit, file_kind, unit_rel, unit_stem


@dataclass
class Rebuilt:
    """What ``rebuild`` wrote."""

    index: Path
    manifest: dict[str, Any]


def collect_units(out: Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    """One manifest entry per planned unit, from the per-unit files: status done, pending or corrupt
    (``units.check_unit``: every file of a unit is checked against the sha256 in its JSON)."""
    entries = []
    for lp in unit_layers(record):
        tech = {"technique": lp.technique} if lp.technique is not None else {}
        for unit in lp.units:
            entry: dict[str, Any] = {"layer": lp.layer, **tech, "unit": unit, "label": lp.label(unit),
                                     "status": PENDING, "meta": unit_rel(lp, unit), "image": None}
            state = check_unit(out, lp, unit, record["spec_hash"])
            entry["status"] = state.status
            if state.record is not None:
                entry.update(_entry_from(state.record))
            if state.problem:
                entry["problem"] = state.problem
            entries.append(entry)
    return entries


def _entry_from(meta: dict[str, Any]) -> dict[str, Any]:
    image = meta["image"]
    images = meta.get("images")
    several = isinstance(images, list) and len(images) > 1 and all(rel in meta["files"] for rel in images)
    others = [rel for rel in meta["files"] if rel != image and (not several or rel not in images)]
    maps = sorted(rel for rel in others if file_kind(rel)[2] is not None)  # e.g. _alpha.png: shown beside the image
    return {
        "image": image,
        **({"images": images, "sha256s": [meta["files"][rel].get("sha256") for rel in images],
            "objectives": meta.get("objectives")} if several else {}),
        "sha256": meta["files"][image].get("sha256"),
        "width": meta["files"][image].get("width"),
        "height": meta["files"][image].get("height"),
        "snapshots": sorted(rel for rel in others if file_kind(rel)[2] is None),
        **({"maps": maps} if maps else {}),
        "objective": meta.get("objective"),
        "time_s": meta.get("time_s"),
        "steps": meta.get("steps"),
        "device": meta.get("device"),
        "batch": (meta.get("batch") or {}).get("index"),
        "shard": meta.get("shard"),
        "worker": meta.get("worker"),
        "finished": meta.get("finished"),
    }


def sheet_rel(lp: LayerPlan, page: int) -> str:
    """A layer's contact sheet ``page`` relative to OUT."""
    return f"{SHEETS_DIR}/{lp.dir}/sheet_{page:03d}.png"


def write_sheets(out: Path, lp: LayerPlan, entries: list[dict[str, Any]], page_size: int,
                 previous: dict[str, Any] | None = None) -> list[dict[str, str] | None]:
    """Write the labelled contact sheets of one layer, ``page_size`` units each (pending units grey).

    Returns one record per page (``sheet``: its path, ``key``: a hash of what it shows, ``sha256``),
    None for a page with no finished unit yet. A sheet whose key and bytes match its record in
    ``previous`` (sheet path -> record, from the last manifest) is kept as it is, not drawn again.
    """
    sheets: list[dict[str, str] | None] = []
    for p in range(0, len(entries), page_size):
        page = entries[p : p + page_size]
        if not any(e["status"] == DONE for e in page):
            sheets.append(None)
            continue
        rel = sheet_rel(lp, p // page_size)
        key = _sheet_key(page, page_size)
        old = (previous or {}).get(rel) or {}
        if old.get("key") == key and _sha_ok(out / rel, old.get("sha256")):
            sheets.append({"sheet": rel, "key": key, "sha256": old["sha256"]})
            continue
        data = _draw_sheet(out, page)
        if data is None:
            sheets.append(None)
            continue
        ensure_dir(out, f"{SHEETS_DIR}/{lp.dir}")
        write_bytes_if_changed(safe_join(out, rel), data)
        sheets.append({"sheet": rel, "key": key, "sha256": sha256_bytes(data)})
    return sheets


def _sheet_key(page: list[dict[str, Any]], page_size: int) -> str:
    """A hash of everything a sheet shows: labels, statuses and the images' sha256 (and featviz's version)."""
    shown = [[e["label"], e["unit"], e["status"], e.get("sha256") if e["status"] == DONE else None]
             + ([e["sha256s"]] if e.get("sha256s") and e["status"] == DONE else []) for e in page]
    return sha256_bytes(json.dumps([__version__, page_size, shown]).encode("utf-8"))


def _draw_sheet(out: Path, page: list[dict[str, Any]]) -> bytes | None:
    """The PNG of one contact sheet, or None if none of its images can be read."""
    import numpy as np
    from PIL import Image

    images, labels = [], []
    for e in page:
        arr = None
        if e["status"] == DONE:
            parts = []
            for rel in e.get("images") or [e["image"]]:  # K diverse renders side by side in one cell
                with contextlib.suppress(OSError, ValueError), Image.open(out / rel) as im:
                    parts.append(np.asarray(im.convert("RGB")))
            if parts and all(p.shape == parts[0].shape for p in parts):
                arr = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        images.append(arr)
        labels.append(e["label"] if arr is not None else f"{e['unit']} {e['status']}")
    shapes = [a.shape for a in images if a is not None]
    if not shapes:
        return None
    blank = np.full(shapes[0], 200, dtype=np.uint8)
    return png_bytes(make_grid(np.stack([a if a is not None and a.shape == shapes[0] else blank for a in images]),
                               labels))


def _sha_ok(path: Path, expected: str | None) -> bool:
    try:
        return expected is not None and sha256_file(path) == expected
    except OutputError:
        return False


def rebuild(out: str | Path, *, page_size: int | None = None) -> Rebuilt:
    """Rebuild the manifest, contact sheets and gallery of ``out`` from its per-unit files.

    Runs under the directory's lock, so shards finishing together take turns; leftover
    temporary files of shared files and of done units are removed. Contact sheets whose units
    have not changed are kept; the manifest is written before the gallery's pages.
    """
    from . import gallery

    out = Path(out).resolve()
    with run_lock(out) as locked:
        record = require_record(out)
        last = _last_manifest(out)
        size = page_size or last.get("page_size") or int(record.get("page_size") or 64)
        entries = collect_units(out, record)
        layers = unit_layers(record)  # each layer once per technique, where the sweep has techniques
        by_dir: dict[str, list[dict[str, Any]]] = {lp.dir: [] for lp in layers}
        for e, lp in zip(entries, (lp for lp in layers for _ in lp.units)):
            by_dir[lp.dir].append(e)
        examples: dict[str, dict[str, Any]] = {}
        for lp in layers:
            if lp.layer in examples:  # a unit's examples are the same for every technique: listed once
                continue
            examples[lp.layer] = gallery.load_examples(out, lp.layer)
            for e in by_dir[lp.dir]:
                e["examples"] = gallery.shown_examples(out, lp.layer, examples[lp.layer], e["unit"])
        add_faithfulness(out, layers, by_dir)
        summaries = []
        sheet_files = set()
        for lp in layers:
            sheets = write_sheets(out, lp, by_dir[lp.dir], size, last.get("sheets"))
            sheet_files.update(s["sheet"] for s in sheets if s)
            rows = by_dir[lp.dir]
            summaries.append({"layer": lp.layer, **({"technique": lp.technique} if lp.technique else {}),
                              "dir": lp.dir, "channels": lp.channels, "units": len(rows),
                              "done": sum(e["status"] == DONE for e in rows),
                              "sheets": [s["sheet"] if s else None for s in sheets], "sheet_keys": sheets})
        counts = {s: sum(e["status"] == s for e in entries) for s in (DONE, PENDING, CORRUPT)}
        manifest = {
            "featviz": __version__,
            "spec_hash": record["spec_hash"],
            "model": record.get("model"),
            "created": record.get("created"),
            "updated": utc_now(),
            "total": len(entries),
            **counts,
            "page_size": size,
            **({"techniques": record["techniques"]} if record.get("techniques") else {}),
            "layers": summaries,
            "units": entries,
        }
        atomic_write_json(safe_join(out, MANIFEST_FILE), manifest)  # before the pages: a killed rebuild
        pages = gallery.write_gallery(out, record, manifest)         # leaves the true counts
        if locked:
            _remove_stale(out, SHEETS_DIR, sheet_files)
            _remove_stale(out, gallery.GALLERY_DIR, set(pages))
            _remove_shared_temps(out, by_dir, layers)
    return Rebuilt(out / gallery.INDEX_FILE, manifest)


def add_faithfulness(out: Path, layers: list[LayerPlan], by_dir: dict[str, list[dict[str, Any]]]) -> None:
    """Put each done unit's faithfulness (``featviz faithfulness``) into its entry, where it was measured
    for the unit's image(s) and the layer's dataset examples as they are now."""
    from ..examples.layout import EXAMPLES_JSON, layer_rel
    from ..faithfulness.layout import read_layer

    shas: dict[str, str | None] = {}
    for lp in layers:
        if lp.layer not in shas:
            path = out / layer_rel(lp.layer) / EXAMPLES_JSON
            shas[lp.layer] = sha256_file(path) if path.is_file() else None
        if shas[lp.layer] is None:
            continue
        found = read_layer(out, lp.dir, shas[lp.layer])
        if not found:
            continue
        for e in by_dir[lp.dir]:
            item = found.get(str(e["unit"]))
            if (e["status"] == DONE and item and item.get("sha256") == e.get("sha256")
                    and (item.get("sha256s") or None) == (e.get("sha256s") or None)):
                e["faithfulness"] = item


def _last_manifest(out: Path) -> dict[str, Any]:
    """The ``manifest.json`` the last rebuild wrote, or {}: its page size, and the records of its sheets
    (sheet path -> record), which are kept where what they show has not changed."""
    try:
        manifest = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(manifest, dict):
        return {}
    size = manifest.get("page_size")
    layers = manifest.get("layers") if isinstance(manifest.get("layers"), list) else []
    sheets = [s for lay in layers if isinstance(lay, dict) for s in lay.get("sheet_keys") or []]
    return {"page_size": size if isinstance(size, int) and size > 0 else None,
            "sheets": {s["sheet"]: s for s in sheets if isinstance(s, dict) and isinstance(s.get("sheet"), str)}}


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


def _remove_shared_temps(out: Path, by_dir: dict[str, list[dict[str, Any]]], layers: list[LayerPlan]) -> None:
    """Delete temp files left by killed writers of shared files, and of units that are done."""
    from .gallery import INDEX_FILE

    remove_temps(out, (RUN_FILE, MANIFEST_FILE, INDEX_FILE))
    for tmp in out.glob(".featviz-write-test.*.tmp"):  # prepare_output_dir's probe, killed midway
        with contextlib.suppress(OSError):
            if time.time() - tmp.stat().st_mtime > 60:
                tmp.unlink()
    for lp in layers:
        remove_temps(out / UNITS_DIR / lp.dir, [unit_stem(e["unit"]) for e in by_dir[lp.dir] if e["status"] == DONE])
