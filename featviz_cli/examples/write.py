"""Writing a pass's examples: per example the whole image with the receptive field marked and the crop,
then each layer's page and ``examples.json`` (last), and the index of the layers' pages.

Only what is missing or damaged is written. An ``examples.json`` that matches its
``content_sha256`` gives, for every example it lists, the source image's size and the size
and sha256 of its two files (:mod:`.layout`): an example listed as the pass finds it now
keeps its files where they match. Every other example is drawn again, and each file is
written only where its bytes differ; the pages and ``examples.json`` are rendered whole and
compared the same way. Images are drawn by DataLoader worker processes, one item per source
image (decoded once for all its examples). Temp files that killed writes left are removed
first. The files' names are in :mod:`.layout`.
"""
from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from .. import __version__
from ..html import render
from ..outputs import (
    png_bytes,
    prepare_output_dir,
    record_problem,
    remove_temps,
    safe_join,
    sha256_bytes,
    write_bytes_if_changed,
)
from ..outputs.files import json_text, remove_file
from .dataset import open_rgb, view_of
from .layout import (
    CONTENT_SHA256,
    EXAMPLES_DIR,
    EXAMPLES_JSON,
    INDEX_HTML,
    OUTPUTS,
    content_digest,
    layer_rel,
    load_record,
    read_examples,
    unit_dir,
)
from .pass_ import ExamplesResult, LayerExamples
from .ranking import EMPTY
from .stats import layer_stats

CROP_SIZE = 128  # longer side of a saved crop, pixels
FULL_SIZE = 320  # longer side of a saved whole image, pixels
JPEG_QUALITY = 90
BOX_COLOUR = (255, 214, 0)
VIEW_COLOUR = (255, 255, 255)


def _plan(result: ExamplesResult) -> dict[str, list[dict[str, Any]]]:
    """Every example to write, grouped by source file: ``{source: [entry, ...]}`` (entries carry their layer)."""
    jobs: dict[str, list[dict[str, Any]]] = {}
    for name, lx in result.layers.items():
        for kind, ranking in (("top", lx.top), ("bottom", lx.bottom)):
            if ranking is None:
                continue
            for unit in range(lx.units):
                for rank in range(ranking.k):
                    i = int(ranking.index[unit, rank])
                    if i == EMPTY:
                        continue
                    pos = int(ranking.pos[unit, rank])
                    y, x = divmod(pos, lx.map_width) if len(lx.shape) == 3 else (0, pos)  # tokens: x is the token
                    box = lx.rf.box(y, x) if lx.rf is not None else (0.0, 0.0, float(result.info.input_size),
                                                                       float(result.info.input_size))
                    stem = f"{unit_dir(unit)}/{kind}_{rank:02d}"
                    jobs.setdefault(result.paths[i], []).append({
                        "layer": name, "unit": unit, "kind": kind, "rank": rank,
                        "activation": float(ranking.values[unit, rank]), "x": x, "y": y, "input_box": box,
                        "full": f"{stem}_full.jpg", "crop": f"{stem}_crop.png",
                    })
    return jobs


def _box_px(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """A float box as whole pixels inside the image, at least one pixel wide and high."""
    x0 = min(width - 1, max(0, int(math.floor(box[0]))))
    y0 = min(height - 1, max(0, int(math.floor(box[1]))))
    x1 = max(x0 + 1, min(width, int(math.ceil(box[2]))))
    y1 = max(y0 + 1, min(height, int(math.ceil(box[3]))))
    return x0, y0, x1, y1


def _fit(im: Image.Image, longest: int) -> Image.Image:
    """``im`` resized so its longer side is ``longest`` px (up or down), aspect kept."""
    w, h = im.size
    scale = longest / max(w, h)
    return im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)


def thumbnail(im: Image.Image) -> tuple[Image.Image, float]:
    """``im`` with its longer side at most ``FULL_SIZE`` px, and the scale applied."""
    w, h = im.size
    scale = min(1.0, FULL_SIZE / max(w, h))
    if scale == 1.0:
        return im, scale
    return im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC), scale


def marked_image(thumb: Image.Image, scale: float, box: Sequence[int],
                 seen: Sequence[float] | None = None) -> Image.Image:
    """A copy of a :func:`thumbnail` with ``box`` (image pixels) outlined, and the network's view if given."""
    small = thumb.copy()
    draw = ImageDraw.Draw(small)
    sw, sh = small.size
    if seen is not None and (seen[2] - seen[0] < sw / scale - 1 or seen[3] - seen[1] < sh / scale - 1):
        s = [v * scale for v in seen]
        draw.rectangle([s[0], s[1], min(sw - 1, s[2]), min(sh - 1, s[3])], outline=VIEW_COLOUR, width=1)
    b = [v * scale for v in box]
    line = max(2, round(max(sw, sh) / 120))
    rect = [b[0], b[1], max(b[0], min(sw - 1, b[2] - 1)), max(b[1], min(sh - 1, b[3] - 1))]
    draw.rectangle([rect[0] - 1, rect[1] - 1, rect[2] + 1, rect[3] + 1], outline=(0, 0, 0), width=line + 2)
    draw.rectangle(rect, outline=BOX_COLOUR, width=line)
    return small


def _jpeg_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    return buf.getvalue()


def _listed(e: dict[str, Any], source: str, width: int, height: int, size: int) -> dict[str, Any]:
    """An example as ``examples.json`` lists it, from a ``width`` x ``height`` source image."""
    box = _box_px(view_of(width, height, size).to_source(e["input_box"]), width, height)
    return {"rank": e["rank"], "source": source, "activation": e["activation"], "x": e["x"], "y": e["y"],
            "full": e["full"], "crop": e["crop"], "box": list(box), "width": width, "height": height}


def _record(data: bytes) -> dict[str, Any]:
    return {"sha256": sha256_bytes(data), "bytes": len(data)}


def _sync(path: Path, data: bytes, problem: str = "") -> str:
    """Write ``data`` atomically unless ``path`` holds exactly these bytes; why it was written ('' if not)."""
    existed = path.exists()
    if not write_bytes_if_changed(path, data):
        return ""
    return problem or ("had other bytes" if existed else "is missing")


class WriteJobs(torch.utils.data.Dataset):
    """One item per source image: load it once, draw and write the files its examples need.

    A job is ``(source, [(entry, {"full" or "crop": why it is redone, ...}), ...])``; an item is
    ``[(entry, listed, {file: record}, {file: why it was written}), ...]`` for those entries.
    """

    def __init__(self, root: Path, size: int, layer_dirs: dict[str, Path],
                 jobs: list[tuple[str, list[tuple[dict, dict[str, str]]]]]) -> None:
        self.root, self.size, self.layer_dirs, self.jobs = root, size, layer_dirs, jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> list[tuple[dict, dict, dict, dict]]:
        source, entries = self.jobs[i]
        im, (w, h) = open_rgb(self.root / source)
        view = view_of(w, h, self.size)
        thumb, scale = thumbnail(im)
        out = []
        for e, need in entries:
            listed = _listed(e, source, w, h, self.size)
            layer_dir = self.layer_dirs[e["layer"]]
            records, written = {}, {}
            for key, problem in need.items():
                if key == "full":
                    data = _jpeg_bytes(marked_image(thumb, scale, listed["box"], view.seen))
                else:
                    data = png_bytes(np.asarray(_fit(im.crop(tuple(listed["box"])), CROP_SIZE)))
                records[e[key]] = _record(data)
                why = _sync(safe_join(layer_dir, e[key]), data, problem)
                if why:
                    written[e[key]] = why
            out.append((e, listed, records, written))
        return out


@dataclass
class WriteReport:
    """What :func:`update_examples` did: each layer's ``examples.json``, the files it wrote (relative to
    OUT, with why: ``is missing``, ``does not match its recorded sha256``, ``had other bytes``...),
    how many it found intact against their records and left alone, and whether the old records
    listed every example as the pass finds it now (``vouched``: the examples did not change)."""

    paths: dict[str, Path]
    written: dict[str, str]
    kept: int
    vouched: bool


@dataclass
class _Previous:
    """A layer's ``examples.json`` before this write: its examples by file, their records, what is wrong with it."""

    problem: str
    listed: dict[str, dict[str, Any]]
    outputs: dict[str, Any]


def _previous(path: Path, result: ExamplesResult, layer: str) -> _Previous:
    """What a layer's old ``examples.json`` can vouch for: nothing unless it matches its ``content_sha256``
    and describes this folder, input size and layer."""
    doc, problem = load_record(path)
    if doc is not None and CONTENT_SHA256 not in doc:
        problem = "has no record of its files' sha256 (an earlier featviz wrote it)"
    if problem or doc is None:
        return _Previous(problem, {}, {})
    if (doc.get("images_root"), doc.get("input_size"), doc.get("layer")) != (
            str(result.root.resolve()), result.info.input_size, layer):
        return _Previous("describes another pass", {}, {})
    listed = {x.get("full"): x for kinds in doc["units"].values() for items in kinds.values() for x in items}
    outputs = doc.get(OUTPUTS)
    return _Previous("", listed, outputs if isinstance(outputs, dict) else {})


def _sizes(previous: dict[str, _Previous]) -> dict[str, tuple[int, int]]:
    """The upright (width, height) of every source image the trusted old records list."""
    sizes = {}
    for prev in previous.values():
        for x in prev.listed.values():
            w, h = x.get("width"), x.get("height")
            if isinstance(w, int) and isinstance(h, int) and isinstance(x.get("source"), str):
                sizes.setdefault(x["source"], (w, h))
    return sizes


def _remove_temps(base: Path, layer_dirs: dict[str, Path], plan: list[tuple[str, list[dict[str, Any]]]]) -> None:
    """Delete the temp files that killed writes of these examples left (pages, ``examples.json``, images)."""
    pages = (Path(INDEX_HTML).stem, Path(EXAMPLES_JSON).stem)
    remove_temps(base, pages[:1])
    for d in layer_dirs.values():
        remove_temps(d, pages)
    for layer, unit in sorted({(e["layer"], e["unit"]) for _, entries in plan for e in entries}):
        remove_temps(safe_join(layer_dirs[layer], unit_dir(unit)), ("top", "bottom"))


def update_examples(
    result: ExamplesResult,
    out_dir: str | Path,
    *,
    workers: int = 0,
    model_name: str | None = None,
) -> WriteReport:
    """Bring every layer's examples under ``out_dir/examples/<layer>/`` up to date with ``result``,
    writing only the files that are missing or differ (see the module's docstring).

    Per example the whole image with the receptive field marked (JPEG) and the crop (PNG);
    then ``index.html`` and, last, ``examples.json`` (an old one that describes other examples
    is removed first, so it never describes half-replaced files). Images are drawn by
    ``workers`` processes.
    """
    out = prepare_output_dir(Path(out_dir))
    base = out / EXAMPLES_DIR
    base.mkdir(exist_ok=True)
    layer_dirs = {name: safe_join(out, layer_rel(name)) for name in result.layers}
    for d in layer_dirs.values():
        d.mkdir(exist_ok=True)
    plan = sorted(_plan(result).items())
    _remove_temps(base, layer_dirs, plan)
    previous = {name: _previous(safe_join(d, EXAMPLES_JSON), result, name) for name, d in layer_dirs.items()}
    sizes = _sizes(previous)
    size = result.info.input_size
    listed: list[tuple[dict, dict]] = []  # (entry, as examples.json lists it)
    records: dict[str, dict[str, Any]] = {name: {} for name in result.layers}
    written: dict[str, str] = {}
    kept, vouched_all = 0, True
    jobs: list[tuple[str, list[tuple[dict, dict[str, str]]]]] = []
    for source, entries in plan:
        todo = []
        for e in entries:
            prev = previous[e["layer"]]
            now = _listed(e, source, *sizes[source], size) if source in sizes else None
            vouched = now is not None and prev.listed.get(e["full"]) == now
            vouched_all = vouched_all and vouched
            need = {}
            for key in ("full", "crop"):
                rec = prev.outputs.get(e[key]) if vouched else None
                problem = record_problem(safe_join(layer_dirs[e["layer"]], e[key]), rec) if vouched else ""
                if vouched and not problem:
                    records[e["layer"]][e[key]] = rec
                    kept += 1
                else:
                    need[key] = problem
            if now is not None and not need:
                listed.append((e, now))
            else:
                todo.append((e, need))
        if todo:
            jobs.append((source, todo))
    json_why = {name: prev.problem or "had other bytes" for name, prev in previous.items()}
    for name, d in layer_dirs.items():  # examples not vouched for are redrawn: the old record goes first
        if any(e["layer"] == name and "" in need.values() for _, todo in jobs for e, need in todo):
            remove_file(safe_join(d, EXAMPLES_JSON))
    for _, todo in jobs:
        for e, _ in todo:
            safe_join(layer_dirs[e["layer"]], unit_dir(e["unit"])).mkdir(exist_ok=True)
    if jobs:
        loader = torch.utils.data.DataLoader(
            WriteJobs(result.root, size, layer_dirs, jobs), batch_size=None, num_workers=workers,
        )
        for items in loader:
            for e, now, recs, why in items:
                listed.append((e, now))
                records[e["layer"]].update(recs)
                written.update({f"{layer_rel(e['layer'])}/{name}": w for name, w in why.items()})
    by_layer: dict[str, dict[str, dict[str, list]]] = {name: {} for name in result.layers}
    for e, now in sorted(listed, key=lambda p: (p[0]["layer"], p[0]["unit"], p[0]["kind"] != "top", p[0]["rank"])):
        by_layer[e["layer"]].setdefault(str(e["unit"]), {}).setdefault(e["kind"], []).append(now)
    paths = {}
    for name, lx in result.layers.items():
        d, rel = layer_dirs[name], layer_rel(name)
        doc = _layer_document(result, lx, by_layer[name], model_name)
        page = layer_page(doc).encode("utf-8")
        outputs = {x[key]: records[name][x[key]] for kinds in doc["units"].values() for items in kinds.values()
                   for x in items for key in ("full", "crop")}
        outputs[INDEX_HTML] = _record(page)
        if why := _sync(safe_join(d, INDEX_HTML), page):
            written[f"{rel}/{INDEX_HTML}"] = why
        doc = {**doc, OUTPUTS: outputs}
        doc[CONTENT_SHA256] = content_digest(doc)
        if why := _sync(safe_join(d, EXAMPLES_JSON), json_text(doc).encode("utf-8"), json_why[name]):
            written[f"{rel}/{EXAMPLES_JSON}"] = why
        paths[name] = d / EXAMPLES_JSON
    if why := _sync(safe_join(base, INDEX_HTML), examples_index(base).encode("utf-8")):
        written[f"{EXAMPLES_DIR}/{INDEX_HTML}"] = why
    return WriteReport(paths, written, kept, vouched_all)


def write_examples(
    result: ExamplesResult,
    out_dir: str | Path,
    *,
    workers: int = 0,
    model_name: str | None = None,
) -> dict[str, Path]:
    """Write every layer's examples under ``out_dir/examples/<layer>/``; return ``{layer: examples.json path}``.

    What :func:`update_examples` does, for callers that want only the paths.
    """
    return update_examples(result, out_dir, workers=workers, model_name=model_name).paths


def _layer_document(result: ExamplesResult, lx: LayerExamples, units: dict[str, Any],
                    model_name: str | None) -> dict[str, Any]:
    """The ``examples.json`` of one layer."""
    rf = dataclasses.asdict(lx.rf) if lx.rf is not None else None
    return {
        "featviz": __version__,
        "layer": lx.layer,
        "model": model_name or result.info.name,
        "k": result.k,
        "images_root": str(result.root.resolve()),
        "images_seen": result.images_seen,
        "files": result.files,
        "unreadable": result.unreadable,
        "unreadable_files": result.unreadable_files,
        "input_size": result.info.input_size,
        "activation_shape": list(lx.shape),
        "receptive_field": rf,
        "stats": layer_stats(lx.stats),
        **({"basis": lx.basis} if lx.basis else {}),
        "units": units,
    }


def layer_page(doc: dict[str, Any]) -> str:
    """A standalone HTML page of one layer's examples: per unit its crops, each linking to the whole image."""
    rf = doc.get("receptive_field")
    rf_text = (f"crop {rf['size']:.0f} px of the {doc['input_size']} px input "
               f"({rf['mass']:.0%} of the input gradient; theoretical receptive field {rf['full']:.0f} px)"
               if rf else "no spatial map: whole image")
    return render("examples_layer.html", title=f"{doc['model']} {doc['layer']}: dataset examples",
                  heading=f"{doc['model']} \u00b7 {doc['layer']}: dataset examples", k=doc["k"],
                  images_seen=doc["images_seen"], unreadable=doc["unreadable"], rf_text=rf_text, units=doc["units"])


def examples_index(base: Path) -> str:
    """``OUT/examples/index.html``: links to every layer page found under ``base``."""
    layers = []
    for path in sorted(Path(base).glob(f"*/{EXAMPLES_JSON}")):
        doc = read_examples(path)
        if doc:
            layers.append({"href": f"{path.parent.name}/{INDEX_HTML}", "name": str(doc.get("layer")),
                           "units": len(doc["units"]), "images_seen": doc.get("images_seen")})
    return render("examples_index.html", title="dataset examples", heading="Dataset examples", layers=layers)
