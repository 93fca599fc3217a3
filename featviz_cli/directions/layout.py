"""Where the passes of ``directions`` put their files (torch-free: the galleries read them).

Caricatures of a sample photo, one per layer, in any output directory (a sweep's too)::

    OUT/caricatures/photo.png           the photo as the network sees it
    OUT/caricatures/<layer dir>.png     the caricature of the photo at that layer
    OUT/caricatures/grid.png            the photo and every caricature, labelled
    OUT/caricatures/caricatures.json    written last: photo, settings, per layer its image,
                                        sha256, objective and activation similarity

In a sweep directory the layer directory names are the sweep's (``sweep.json``), so the
gallery index (and any model index) can show each layer's caricature beside its units.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import OutputError, SpecError
from ..outputs import safe_join

CARICATURES_DIR = "caricatures"
CARICATURES_JSON = "caricatures.json"


def caricature_rel(name: str) -> str:
    """A caricature file relative to OUT: ``caricatures/<name>``."""
    return f"{CARICATURES_DIR}/{name}"


def read_caricatures(out: Path) -> dict[str, Any] | None:
    """``OUT/caricatures/caricatures.json`` with only the layers whose image exists inside OUT; None if absent."""
    try:
        doc = json.loads((Path(out) / CARICATURES_DIR / CARICATURES_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list):
        return None
    layers = []
    for entry in doc["layers"]:
        try:
            if isinstance(entry, dict) and safe_join(Path(out), str(entry["image"])).is_file():
                layers.append(entry)
        except (KeyError, OutputError):
            continue
    return {**doc, "layers": layers}


def kept(error: SpecError, what: str, out: Path) -> SpecError:
    """``error`` (found after a long pass) saying that ``what`` stays in ``out`` for the rerun to reuse."""
    return SpecError(error.field, str(error).split(": ", 1)[1] + f" ({what} stays in {out}; the rerun reuses it.)")
