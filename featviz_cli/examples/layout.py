"""Where a dataset-examples pass puts its files under the output directory OUT (the contract the sweep gallery reads).

::

    OUT/examples/<layer>/examples.json                 written last
    OUT/examples/<layer>/index.html                    a page showing every unit's examples
    OUT/examples/<layer>/unit_00005/top_00_full.jpg    the whole image, receptive field marked
    OUT/examples/<layer>/unit_00005/top_00_crop.png    the crop around the maximum
    OUT/examples/index.html                            links to every layer's page
    OUT/examples/checkpoint-<hash>.pt                  the pass's state (resume, incremental reruns)

Torch-free, so the gallery can read the examples without loading torch.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..outputs import sanitize_filename

EXAMPLES_DIR = "examples"
EXAMPLES_JSON = "examples.json"
INDEX_HTML = "index.html"


def layer_rel(layer: str) -> str:
    """A layer's examples folder relative to OUT: ``examples/<layer as a safe file name>``."""
    return f"{EXAMPLES_DIR}/{sanitize_filename(layer)}"


def unit_dir(unit: int) -> str:
    """The folder of one unit's examples inside the layer's folder."""
    return f"unit_{unit:05d}"


def read_examples(path: Path) -> dict[str, Any]:
    """An ``examples.json`` as a dict, or ``{}`` when it is missing, unreadable or has no ``units`` table."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("units"), dict) else {}
