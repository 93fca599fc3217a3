"""Writing a pass's examples: per example the whole image with the receptive field marked and the crop,
then each layer's page and ``examples.json`` (last), and the index of the layers' pages.

Images are written by DataLoader worker processes, one item per source image (decoded once
for all its examples). The files' names are in :mod:`.layout`.
"""
from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from .. import __version__
from ..html import render
from ..outputs import atomic_write_bytes, atomic_write_json, atomic_write_text, png_bytes, prepare_output_dir, safe_join
from .dataset import open_rgb, view_of
from .layout import EXAMPLES_DIR, EXAMPLES_JSON, INDEX_HTML, layer_rel, read_examples, unit_dir
from .pass_ import ExamplesResult, LayerExamples
from .ranking import EMPTY

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


class WriteJobs(torch.utils.data.Dataset):
    """One item per source image: load it once, write the full image and crop of each of its examples."""

    def __init__(self, root: Path, size: int, layer_dirs: dict[str, Path], jobs: list[tuple[str, list[dict]]]) -> None:
        self.root, self.size, self.layer_dirs, self.jobs = root, size, layer_dirs, jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> list[dict[str, Any]]:
        source, entries = self.jobs[i]
        im, (w, h) = open_rgb(self.root / source)
        view = view_of(w, h, self.size)
        thumb, scale = thumbnail(im)
        out = []
        for e in entries:
            box = _box_px(view.to_source(e["input_box"]), w, h)
            layer_dir = self.layer_dirs[e["layer"]]
            atomic_write_bytes(safe_join(layer_dir, e["full"]), _jpeg_bytes(marked_image(thumb, scale, box, view.seen)))
            crop = _fit(im.crop(box), CROP_SIZE)
            atomic_write_bytes(safe_join(layer_dir, e["crop"]), png_bytes(np.asarray(crop)))
            out.append({**e, "box": list(box), "width": w, "height": h, "source": source})
        return out


def write_examples(
    result: ExamplesResult,
    out_dir: str | Path,
    *,
    workers: int = 0,
    model_name: str | None = None,
) -> dict[str, Path]:
    """Write every layer's examples under ``out_dir/examples/<layer>/``; return ``{layer: examples.json path}``.

    Per example the whole image with the receptive field marked (JPEG) and the crop (PNG);
    then ``index.html`` and, last, ``examples.json`` (an old one is removed first, so it
    never describes half-replaced files). Images are written by ``workers`` processes.
    """
    out = prepare_output_dir(Path(out_dir))
    base = out / EXAMPLES_DIR
    base.mkdir(exist_ok=True)
    layer_dirs = {name: safe_join(out, layer_rel(name)) for name in result.layers}
    for name, lx in result.layers.items():
        d = layer_dirs[name]
        d.mkdir(exist_ok=True)
        safe_join(d, EXAMPLES_JSON).unlink(missing_ok=True)
        for kind, ranking in (("top", lx.top), ("bottom", lx.bottom)):
            if ranking is not None:
                for unit in range(lx.units):
                    if int(ranking.index[unit, 0]) != EMPTY:
                        safe_join(d, unit_dir(unit)).mkdir(exist_ok=True)
    jobs = sorted(_plan(result).items())
    written: list[dict[str, Any]] = []
    loader = torch.utils.data.DataLoader(
        WriteJobs(result.root, result.info.input_size, layer_dirs, jobs), batch_size=None, num_workers=workers,
    )
    for entries in loader:
        written.extend(entries)
    by_layer: dict[str, dict[str, dict[str, list]]] = {name: {} for name in result.layers}
    for e in sorted(written, key=lambda e: (e["layer"], e["unit"], e["kind"] != "top", e["rank"])):
        unit = by_layer[e["layer"]].setdefault(str(e["unit"]), {})
        unit.setdefault(e["kind"], []).append({
            "rank": e["rank"], "source": e["source"], "activation": e["activation"], "x": e["x"], "y": e["y"],
            "full": e["full"], "crop": e["crop"], "box": e["box"], "width": e["width"], "height": e["height"],
        })
    paths = {}
    for name, lx in result.layers.items():
        doc = _layer_document(result, lx, by_layer[name], model_name)
        atomic_write_text(safe_join(layer_dirs[name], INDEX_HTML), layer_page(doc))
        atomic_write_json(safe_join(layer_dirs[name], EXAMPLES_JSON), doc)
        paths[name] = layer_dirs[name] / EXAMPLES_JSON
    atomic_write_text(safe_join(base, INDEX_HTML), examples_index(base))
    return paths


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
