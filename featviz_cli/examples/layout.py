"""Where a dataset-examples pass puts its files under the output directory OUT (the contract the sweep gallery reads).

::

    OUT/examples/<layer>/examples.json                 written last: the examples, their files' sha256
    OUT/examples/<layer>/index.html                    a page showing every unit's examples
    OUT/examples/<layer>/unit_00005/top_00_full.jpg    the whole image, receptive field marked
    OUT/examples/<layer>/unit_00005/top_00_crop.png    the crop around the maximum
    OUT/examples/index.html                            links to every layer's page
    OUT/examples/checkpoint-<hash>.pt                  the pass's state (resume, incremental reruns)
    OUT/examples/checkpoint-<hash>.sha256              its sha256, as ``sha256sum`` writes it

``examples.json`` records the size and sha256 of every file of its layer (``outputs``) and, as
its last key, the sha256 of its own JSON text without that key (``content_sha256``), so a
rerun can tell a damaged file from an intact one without decoding any image.
Torch-free, so the gallery can read the examples without loading torch.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from ..outputs import sanitize_filename
from ..outputs.files import json_text

EXAMPLES_DIR = "examples"
EXAMPLES_JSON = "examples.json"
INDEX_HTML = "index.html"
OUTPUTS = "outputs"  # examples.json: {file relative to the layer's folder: {"bytes": n, "sha256": hex}}
CONTENT_SHA256 = "content_sha256"  # examples.json's last key: the sha256 of its text without it


def layer_rel(layer: str) -> str:
    """A layer's examples folder relative to OUT: ``examples/<layer as a safe file name>``."""
    return f"{EXAMPLES_DIR}/{sanitize_filename(layer)}"


def unit_dir(unit: int) -> str:
    """The folder of one unit's examples inside the layer's folder."""
    return f"unit_{unit:05d}"


def content_digest(doc: dict[str, Any]) -> str:
    """The sha256 of ``doc``'s JSON text (as :func:`~featviz_cli.outputs.files.json_text` writes it)
    without its ``content_sha256`` key."""
    body = {key: value for key, value in doc.items() if key != CONTENT_SHA256}
    return hashlib.sha256(json_text(body).encode("utf-8")).hexdigest()


def _has_units_table(data: Any) -> bool:
    """True if ``data["units"]`` is ``{unit: {kind: [example, ...]}}`` (what the pages and the gallery index)."""
    units = data.get("units") if isinstance(data, dict) else None
    return isinstance(units, dict) and all(
        isinstance(kinds, dict) and all(isinstance(items, list) and all(isinstance(x, dict) for x in items)
                                        for items in kinds.values())
        for kinds in units.values())


def load_record(path: Path) -> tuple[dict[str, Any] | None, str]:
    """An ``examples.json`` and what is wrong with it: ``(doc, "")``, or ``(None, problem)`` when it is
    missing, unreadable, not an examples record, or does not match its ``content_sha256``.

    A document without ``content_sha256`` (written by an earlier featviz) is returned as it is.
    """
    try:
        text = Path(path).read_bytes()
    except FileNotFoundError:
        return None, "is missing"
    except OSError as err:
        return None, f"cannot be read ({err.strerror})"
    try:
        data = json.loads(text)
    except ValueError:  # also invalid UTF-8
        return None, "is not valid JSON"
    if not _has_units_table(data):
        return None, "is not an examples record"
    if CONTENT_SHA256 in data and data[CONTENT_SHA256] != content_digest(data):
        return None, "does not match its recorded content_sha256"
    return data, ""


def read_examples(path: Path) -> dict[str, Any]:
    """An ``examples.json`` as a dict, or ``{}`` when it is missing, unreadable, damaged or has no ``units`` table."""
    return load_record(path)[0] or {}


_KINDS = ("checkpoint", "checkpoint digest", "whole image(s)", "crop(s)", EXAMPLES_JSON, "layer page(s)",
          "index page", "other file(s)")  # in the order a summary names them


def _kind(rel: str) -> str:
    """What a file under OUT is, for a summary: one of ``_KINDS``."""
    name = rel.rsplit("/", 1)[-1]
    if name.endswith("_crop.png"):
        return "crop(s)"
    if name.endswith("_full.jpg"):
        return "whole image(s)"
    if name == EXAMPLES_JSON:
        return EXAMPLES_JSON
    if name == INDEX_HTML:
        return "index page" if rel == f"{EXAMPLES_DIR}/{INDEX_HTML}" else "layer page(s)"
    if name.startswith("checkpoint-"):
        return "checkpoint" if name.endswith(".pt") else "checkpoint digest"
    return "other file(s)"


def describe_files(rels: Iterable[str]) -> str:
    """``"3 file(s): 1 whole image(s), 2 crop(s)"``: how many files, by kind (paths relative to OUT)."""
    counts = Counter(_kind(rel) for rel in rels)
    return f"{sum(counts.values())} file(s): " + ", ".join(f"{counts[k]} {k}" for k in _KINDS if counts[k])


def repair_lines(repaired: dict[str, str], shown: int = 3) -> list[str]:
    """One line per kind of file in ``repaired`` (file relative to OUT -> what was wrong), in the order of
    ``_KINDS``: ``Repaired 2 crop(s): examples/a/unit_00001/top_00_crop.png is missing; ... .``, naming
    at most ``shown`` files each."""
    by_kind: dict[str, list[str]] = {}
    for rel, why in repaired.items():
        by_kind.setdefault(_kind(rel), []).append(f"{rel} {why}")
    lines = []
    for kind in (k for k in _KINDS if k in by_kind):
        items = by_kind[kind]
        more = f"; and {len(items) - shown} more" if len(items) > shown else ""
        lines.append(f"Repaired {len(items)} {kind}: {'; '.join(items[:shown])}{more}.")
    return lines
