"""Rendering a dictionary as a sweep, and the pictures the direction pages share (heat maps, tiles).

Factors and atlas cells are rendered by an ordinary dictionary sweep into ``OUT/renders``:
resumable, shardable and verified by sha256 like any sweep, with its own gallery. The renders
follow the pass: a rerun with other settings (or a matrix that came out differently) moves the
earlier renders to ``OUT/renders/archive/<hash>/`` and renders the new ones.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import ObjectiveSpec, Spec

RENDERS_DIR = "renders"


def dictionary_spec(spec: Spec, layer: str, matrix: Path, out: Path, *, cossim_pow: float = 1.0) -> Spec:
    """``spec`` with its objective replaced by the rows of ``matrix`` at ``layer`` (``units: all``), into ``out``."""
    here = copy.deepcopy(spec)
    here.objective = [ObjectiveSpec(type="direction", layer=layer, vector_file=str(matrix), units="all",
                                    cossim_pow=cossim_pow)]
    here.param.batch, here.interpolate = None, None
    here.output.dir = str(out)
    return here


def render_dictionary(spec: Spec, layer: str, matrix: Path, out: Path, *, cossim_pow: float = 1.0,
                      progress: Any = None, notify: Callable[[str], None] | None = None,
                      stop: Any = None) -> Any:
    """Run the dictionary sweep of ``matrix`` into ``out`` (resuming what is there, archiving the renders of
    another spec or matrix); its ``SweepReport``."""
    from ..sweep import run_sweep

    return run_sweep(dictionary_spec(spec, layer, matrix, out, cossim_pow=cossim_pow), out, progress=progress,
                     notify=notify, stop=stop, new_run=True)


def render_path(out: Path, layer_dir: str, row: int) -> Path:
    """The PNG of row ``row`` in a dictionary sweep at ``out`` (see ``sweep.units``)."""
    return Path(out) / "units" / layer_dir / f"{row:05d}.png"


def heat_overlay(image: np.ndarray, heat: np.ndarray, size: int) -> np.ndarray:
    """A (size, size, 3) uint8 picture of where a map (h, w, in [0, 1], upsampled) is high: the photo in
    colour there, dark grey elsewhere (a colour overlay is unreadable on photos of that colour)."""
    from PIL import Image

    photo = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    h = np.asarray(Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BILINEAR), dtype=np.float32)[..., None] / 255
    grey = photo.mean(-1, keepdims=True) * 0.3
    out = grey * (1 - h) + photo * h
    return np.clip(out, 0, 255).astype(np.uint8)


def tile(images: np.ndarray, rows: int, cols: int, gap: int = 0, fill: int = 255) -> np.ndarray:
    """(rows * cols, S, S, 3) uint8 tiles as one image, row-major, ``gap`` px between them."""
    s = images.shape[1]
    out = np.full((rows * s + (rows - 1) * gap, cols * s + (cols - 1) * gap, 3), fill, dtype=np.uint8)
    for k in range(min(len(images), rows * cols)):
        r, c = divmod(k, cols)
        out[r * (s + gap): r * (s + gap) + s, c * (s + gap): c * (s + gap) + s] = images[k]
    return out
