"""Where ``featviz faithfulness`` puts its results in a sweep directory OUT (read by the gallery; torch-free).

::

    OUT/faithfulness/<units dir>.json    one file per layer (and technique): per unit its numbers

``<units dir>`` is the layer's directory under ``units/`` (``_blocks.5``, or ``channel/_blocks.5`` in a
sweep with techniques). Each file records the sha256 of the ``examples.json`` it was computed from,
and per unit the sha256 of the image it measured, so a result is used only while both are unchanged.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FAITHFULNESS_DIR = "faithfulness"


def layer_file(units_dir: str) -> str:
    """A layer's (and technique's) results relative to OUT."""
    return f"{FAITHFULNESS_DIR}/{units_dir}.json"


def read_document(out: Path, units_dir: str) -> dict[str, Any]:
    """The whole results file of ``units_dir``, or {} when there is none or it is unreadable."""
    try:
        data = json.loads((Path(out) / layer_file(units_dir)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("units"), dict) else {}


def read_layer(out: Path, units_dir: str, examples_sha256: str | None = None) -> dict[str, dict[str, Any]]:
    """Per unit (its number as text) the results of ``units_dir``; {} when there are none, or when they
    were computed from other dataset examples than ``examples_sha256`` (where given)."""
    doc = read_document(out, units_dir)
    if not doc or (examples_sha256 is not None and doc.get("examples_sha256") != examples_sha256):
        return {}
    return {k: v for k, v in doc["units"].items() if isinstance(v, dict)}
