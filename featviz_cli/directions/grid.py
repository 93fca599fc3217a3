"""The activation grid of a photo: the activation vector at every position of a layer, rendered.

One batch holds a cell per position of the photo's activation map at the layer (row-major);
cell (r, c) maximizes the direction of the photo's activation vector there (dot times a power
of the cosine), and ``params.grid.SharedGrid`` shares low-resolution parts between
neighbouring cells so the grid stays coherent. The renders are tiled into one image.

Layout of OUT: ``photo.png``, ``grid.png`` (the cells tiled), ``grid.json`` (written last:
settings and per cell its objective) and ``index.html`` (the photo beside the grid).
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import torch

from .. import objectives as obj
from .. import runtime as rt
from ..config import Spec, spec_to_dict
from ..engine import Progress, optimize
from ..errors import SpecError
from ..hooks import resolve_layer
from ..html import render
from ..images import load_image
from ..models import load_model
from ..outputs import atomic_write_json, atomic_write_text, output_dir, sha256_file, to_uint8, write_png
from ..params.grid import SharedGrid
from ..recipe import build_recipe
from .caricature import check_photo, photo_activations
from .render import tile
from .sample import check_map

MAX_CELLS = 1024


def grid_vectors(acts: torch.Tensor) -> torch.Tensor:
    """A (C, H, W) activation map as its (H * W, C) vectors, row-major."""
    return acts.permute(1, 2, 0).reshape(-1, acts.shape[0])


def run_grid(spec: Spec, photo_path: str | Path, out: str | Path, *, layer: str, cossim_pow: float = 1.0,
             shared: bool = True, progress: Progress | None = None) -> Path:
    """Render the activation grid of the photo at ``layer`` into ``out``; return its page (kept if done)."""
    from ..sweep.plan import hash_of

    photo_file = check_photo(photo_path, "the photo whose activations to render")
    out = Path(out)
    settings = {"layer": layer, "cossim_pow": cossim_pow, "shared": shared, "photo_file_sha256": sha256_file(photo_file),
                "render_hash": hash_of({k: v for k, v in spec_to_dict(spec).items()
                                        if k not in ("output", "device", "name", "objective", "sweep", "dataset")})}
    done = _read(out / "grid.json")
    if done and all(done.get(k) == v for k, v in settings.items()) and (out / "index.html").is_file() \
            and sha256_file(out / "grid.png") == done.get("grid_sha256"):
        return out / "index.html"
    model, info = load_model(spec.model)
    resolve_layer(model, layer, field="--layer")
    photo = load_image(photo_file, info.input_size, field="--image")
    acts = photo_activations(model, info, photo, [layer])[layer]
    _, rows, cols = check_map(acts[None].shape, layer, "--layer")
    if rows * cols > MAX_CELLS:
        raise SpecError("--layer", f"layer {layer!r} has {rows} x {cols} positions, over {MAX_CELLS} cells; choose a "
                        "later layer or a smaller model.input_size.")
    here = copy.deepcopy(spec)
    here.param.batch, here.interpolate = rows * cols, None
    objective = obj.direction(layer, grid_vectors(acts), cossim_pow=cossim_pow, name="position",
                              rows=list(range(rows * cols)))
    execution = rt.Execution.resolve(here.device, here.precision, here.channels_last, here.compile)
    recipe = build_recipe(here, info, execution.device, objective)
    if shared:
        recipe = dataclasses.replace(recipe, image=SharedGrid(recipe.image, rows, cols, here.param.size,
                                                              sd=here.param.sd, generator=recipe.generator,
                                                              device=execution.device))
    with output_dir(out) as out:  # after the checks: bad input writes nothing
        run = optimize(model, info, recipe, execution, progress=progress)
        cells = to_uint8(run.images.permute(0, 2, 3, 1))
        write_png(out, "photo.png", to_uint8(photo.permute(1, 2, 0)[None])[0])
        rec = write_png(out, "grid.png", tile(cells, rows, cols))
        atomic_write_json(out / "grid.json", {**settings, "photo": photo_file.name, "rows": rows, "cols": cols,
                                              "cell_size": int(cells.shape[1]), "steps": here.steps,
                                              "seed": here.seed, "grid": "grid.png", "grid_sha256": rec["sha256"],
                                              "objective": [round(v, 6) for v in run.values]})
        page = render("grid.html", title=f"featviz \u00b7 activation grid of {photo_file.name} at {layer}",
                      heading=f"{spec.model.name} \u00b7 {layer}: activation grid of {photo_file.name}", rows=rows,
                      cols=cols, size=int(cells.shape[1]), shared=shared, steps=here.steps)
        atomic_write_text(out / "index.html", page)
    return out / "index.html"


def _read(path: Path) -> dict[str, Any] | None:
    import json

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
