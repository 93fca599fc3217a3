"""The activation atlas (Carter et al. 2019): sampled activations laid out in 2-D, averaged per grid
cell, and each cell's mean direction rendered.

Layout of OUT::

    OUT/sample-<hash>.pt      the sample's checkpoint (a killed pass resumes)
    OUT/layout.npz            the 2-D positions of the sample (UMAP, cosine; t-SNE without umap-learn)
    OUT/cells.npy             the mean activation vector of each kept cell: the dictionary rendered
    OUT/atlas.json            grid size, per cell (row order of cells.npy) its grid position, count, render
                              and the render's page in the renders' gallery
    OUT/renders/              the dictionary sweep of cells.npy (resumable, sha256, its own gallery)
    OUT/atlas.png             the renders placed at their cells
    OUT/index.html            the zoomable page (written last)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import Spec
from ..errors import SpecError
from ..html import render
from ..models import load_model
from ..outputs import atomic_write_bytes, atomic_write_json, atomic_write_text, output_dir, write_png
from .layout import kept
from .matrix import save_dictionary
from .neuron_groups import checkpoint_for, spec_layer
from .render import RENDERS_DIR, render_dictionary, render_path
from .sample import check_folder, probe_layer, sample_activations


LAYOUTS = ("auto", "umap", "tsne")


def layout_2d(vectors: np.ndarray, *, seed: int = 0, method: str = "auto") -> tuple[np.ndarray, str]:
    """2-D positions in [0, 1] of (P, C) vectors: UMAP with the cosine metric, or t-SNE (cosine) without umap-learn."""
    x = np.asarray(vectors, dtype=np.float32)
    if method in ("auto", "umap"):
        try:
            import umap
        except ImportError:
            if method == "umap":
                raise SpecError("--layout", "umap needs umap-learn: pip install 'featviz[atlas]'.") from None
        else:
            neighbours = max(2, min(15, len(x) - 1))
            xy = umap.UMAP(n_components=2, metric="cosine", n_neighbors=neighbours, min_dist=0.1,
                           random_state=seed, n_jobs=1).fit_transform(x)
            return _unit_square(xy), "umap"
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        raise SpecError("--layout", "the atlas layout needs umap-learn or scikit-learn: pip install 'featviz[atlas]'.") \
            from None
    perplexity = float(max(2, min(30, (len(x) - 1) // 3)))
    xy = TSNE(n_components=2, metric="cosine", init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)
    return _unit_square(xy), "tsne"


def _unit_square(xy: np.ndarray) -> np.ndarray:
    lo, hi = xy.min(0), xy.max(0)
    return ((xy - lo) / np.maximum(hi - lo, 1e-12)).astype(np.float64)


def grid_cells(xy: np.ndarray, vectors: np.ndarray, grid: int, min_count: int) -> tuple[np.ndarray, list[dict[str, int]]]:
    """Mean vector of each grid cell holding at least ``min_count`` points: (M, C) and per cell its row, col, count."""
    ij = np.minimum((xy * grid).astype(int), grid - 1)
    flat = ij[:, 1] * grid + ij[:, 0]  # row = y, col = x
    means, cells = [], []
    for key in np.unique(flat):
        members = flat == key
        count = int(members.sum())
        if count < min_count:
            continue
        means.append(vectors[members].mean(0))
        cells.append({"row": int(key // grid), "col": int(key % grid), "count": count})
    if not cells:
        raise SpecError("--min-count", f"no cell of the {grid} x {grid} grid holds {min_count} points; "
                        "lower --min-count or --grid, or sample more (--samples, --crops).")
    return np.stack(means).astype(np.float32), cells


def run_atlas(spec: Spec, images: str | Path, out: str | Path, *, grid: int = 12, samples: int = 5000,
              crops: int = 0, min_count: int = 3, klass: int | str | None = None, layout: str = "auto",
              cossim_pow: float = 1.0, progress: Any = None, notify: Callable[[str], None] | None = None,
              stop: Any = None) -> Path:
    """Build the activation atlas of ``spec``'s layer over ``images`` into ``out``; return its page.

    Every input is checked before ``out`` is created: bad input writes nothing.
    """
    layer = spec_layer(spec)
    if layout not in LAYOUTS:
        raise SpecError("--layout", f"{layout!r} is not {', '.join(LAYOUTS[:-1])} or {LAYOUTS[-1]}.")
    if grid < 1 or min_count < 1:
        raise SpecError("--grid" if grid < 1 else "--min-count", "must be >= 1.")
    if min_count > samples:
        raise SpecError("--min-count", f"{min_count} points per cell from a sample of {samples} (--samples) cannot "
                        "be; lower --min-count or raise --samples.")
    model, info = load_model(spec.model)
    _, _, h, w = probe_layer(model, info, layer).shape
    cls = _class_index(model, info, klass)
    total = check_folder(images)
    positions = min(samples, total * (1 + crops) * h * w)
    if min_count > positions:
        raise SpecError("--min-count", f"{min_count} points per cell, but {total} image(s) of {h} x {w} positions "
                        f"with {crops} crop(s) each give at most {positions}; lower --min-count or add --crops.")
    with output_dir(out) as path:
        return _build(spec, layer, model, info, Path(images), path, grid=grid, samples=samples, crops=crops,
                      min_count=min_count, cls=cls, layout=layout, cossim_pow=cossim_pow, progress=progress,
                      notify=notify, stop=stop)


def _class_index(model: Any, info: Any, klass: int | str | None) -> int | None:
    """The class index of ``--class`` (an index or a name), checked against the model's outputs."""
    import torch

    from ..hooks import OUTPUT, forward_to
    from ..recipe import resolve_class

    if klass is None:
        return None
    cls = resolve_class(klass, info.class_names, "--class")
    with torch.no_grad():
        n = forward_to(model.eval(), torch.zeros(1, 3, info.input_size, info.input_size), [OUTPUT])[OUTPUT]
    classes = int(n.flatten(1).shape[1])
    if not 0 <= cls < classes:
        raise SpecError("--class", f"class {cls} is out of range: the model has {classes} outputs (0..{classes - 1}).")
    return cls


def _build(spec: Spec, layer: str, model: Any, info: Any, images: Path, out: Path, *, grid: int, samples: int,
           crops: int, min_count: int, cls: int | None, layout: str, cossim_pow: float, progress: Any,
           notify: Callable[[str], None] | None, stop: Any) -> Path:
    """The atlas's passes into the prepared ``out`` (see the module's layout)."""
    from ..sweep.gallery import unit_page_rel

    identity = dataclasses.asdict(spec.model)
    fingerprint = {"model": identity, "layer": layer, "samples": samples, "crops": crops, "seed": spec.seed,
                   "class": cls, "images": str(images.resolve())}
    stage = progress.stage("images", "images/s") if progress is not None else None
    s = sample_activations(model, info, layer, images, size=samples, seed=spec.seed, crops=crops, klass=cls,
                           checkpoint=checkpoint_for(out, "sample", fingerprint), identity=identity, progress=stage,
                           notify=notify)
    vectors = s.vectors.numpy()
    key = hashlib.sha256(json.dumps({**fingerprint, "layout": layout}, sort_keys=True, default=str).encode()
                         + vectors.tobytes()).hexdigest()
    xy, used = _cached_layout(out / "layout.npz", key, vectors, spec.seed, layout)
    try:
        means, cells = grid_cells(xy, vectors, grid, min_count)
    except SpecError as e:  # the sample was long to take: say that it is kept
        raise kept(e, "the sample with its layout", out) from None
    matrix = save_dictionary(out / "cells.npy", means)
    report = render_dictionary(spec, layer, matrix, out / RENDERS_DIR, cossim_pow=cossim_pow, progress=progress,
                               notify=notify, stop=stop)
    layer_dir = json.loads((out / RENDERS_DIR / "sweep.json").read_text(encoding="utf-8"))["layers"][0]["dir"]
    size = _assemble(out, cells, grid, layer_dir)
    names = info.class_names
    doc = {"layer": layer, "model": spec.model.name, "grid": grid, "min_count": min_count, "layout": used,
           "sampled": int(len(vectors)), "images": s.done, "crops": crops, "cell_size": size,
           "class": None if cls is None else {"index": cls, "name": names[cls] if names else str(cls)},
           "done": report.done, "cells": [{**c, "render": f"{RENDERS_DIR}/units/{layer_dir}/{i:05d}.png",
                                           "page": f"{RENDERS_DIR}/{unit_page_rel(layer_dir, i)}"}
                                          for i, c in enumerate(cells)]}
    atomic_write_json(out / "atlas.json", doc)
    title = f"activation atlas of {layer}" + (f" for class {doc['class']['name']}" if cls is not None else "")
    atomic_write_text(out / "index.html", render("atlas.html", title=f"featviz \u00b7 {title}",
                                                 heading=f"{spec.model.name} \u00b7 {title}", doc=doc,
                                                 cells=[{k: c[k] for k in ("row", "col", "count", "page")}
                                                        for c in doc["cells"]],
                                                 width=grid * size, height=grid * size))
    return out / "index.html"


def _cached_layout(path: Path, key: str, vectors: np.ndarray, seed: int, method: str) -> tuple[np.ndarray, str]:
    """The 2-D layout of the sample, computed once and kept in ``layout.npz`` under the sample's hash."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) == key:
                return data["xy"], str(data["method"])
    except (OSError, KeyError, ValueError):
        pass
    xy, used = layout_2d(vectors, seed=seed, method=method)
    import io

    buf = io.BytesIO()
    np.savez(buf, xy=xy, key=np.array(key), method=np.array(used))
    atomic_write_bytes(path, buf.getvalue())
    return xy, used


def _assemble(out: Path, cells: list[dict[str, int]], grid: int, layer_dir: str) -> int:
    """``OUT/atlas.png``: each rendered cell at its place on a white canvas; returns the cell size."""
    from PIL import Image

    size = 0
    tiles = {}
    for i, c in enumerate(cells):
        path = render_path(out / RENDERS_DIR, layer_dir, i)
        if path.is_file():
            with Image.open(path) as im:
                tiles[i] = np.asarray(im.convert("RGB"))
                size = tiles[i].shape[0]
    size = size or 32
    canvas = np.full((grid * size, grid * size, 3), 255, dtype=np.uint8)
    for i, t in tiles.items():
        r, col = cells[i]["row"], cells[i]["col"]
        canvas[(grid - 1 - r) * size:(grid - r) * size, col * size:(col + 1) * size] = t  # y up, as in a plot
    write_png(out, "atlas.png", canvas)
    return size
