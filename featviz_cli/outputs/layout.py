"""A render's files in its output directory: per-image PNGs, grids, snapshots, animations, ``meta.json``.

An old ``meta.json`` is removed first and the new one is written last, listing every
file with its hash, so its presence means the whole render is complete. Every path
goes through :func:`~.files.safe_join`, so nothing is written outside the directory.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .files import (
    atomic_write_bytes,
    atomic_write_json,
    ensure_dir,
    prepare_output_dir,
    remove_file,
    safe_join,
    sanitize_filename,
    sha256_bytes,
)
from .pictures import gif_bytes, heat_map, make_grid, png_bytes, to_uint8, webp_bytes, webp_supported, with_alpha

META_NAME = "meta.json"
GRID_NAME = "grid.png"
SNAPSHOT_DIR = "snapshots"
STRIP_NAME = "strip.png"
GIF_NAME = "interpolation.gif"
WEBP_NAME = "interpolation.webp"
ALPHA_DIR = "alpha"

FileRecords = dict[str, dict[str, Any]]


def image_file_name(index: int, stem: str) -> str:
    """The per-image file name: ``{index:03d}_{sanitized stem}.png``."""
    return f"{index:03d}_{sanitize_filename(stem)}.png"


def snapshot_file_name(step: int) -> str:
    """The snapshot grid path relative to the output directory: ``snapshots/step_{step:05d}.png``."""
    return f"{SNAPSHOT_DIR}/step_{step:05d}.png"


def snapshot_image_name(step: int, index: int, stem: str) -> str:
    """One image's snapshot, beside the step's grid: ``snapshots/step_{step:05d}/{index:03d}_{stem}.png``."""
    return f"{SNAPSHOT_DIR}/step_{step:05d}/{image_file_name(index, stem)}"


def alpha_file_names(index: int, stem: str) -> tuple[str, str]:
    """One image's transparency files: ``alpha/{index:03d}_{stem}_heat.png`` and ``..._rgba.png``."""
    base = f"{ALPHA_DIR}/{image_file_name(index, stem)[:-4]}"
    return f"{base}_heat.png", f"{base}_rgba.png"


def _write_file(out_dir: Path, relative: str, data: bytes, width: int, height: int) -> dict[str, Any]:
    """Write ``data`` at ``out_dir/relative`` atomically; return its record ``{sha256, bytes, width, height}``."""
    atomic_write_bytes(safe_join(out_dir, relative), data)
    return {"sha256": sha256_bytes(data), "bytes": len(data), "width": width, "height": height}


def write_png(out_dir: Path, relative: str, image: np.ndarray) -> dict[str, Any]:
    """Write one ``(H, W, 3)`` uint8 image as a PNG at ``out_dir/relative`` atomically; return its record.

    The record is ``{sha256, bytes, width, height}``.
    """
    return _write_file(out_dir, relative, png_bytes(image), int(image.shape[1]), int(image.shape[0]))


def write_alpha(out_dir: Path, heat_name: str, rgba_name: str, image: Any, alpha: Any) -> FileRecords:
    """Write one image's transparency map (``alpha``: ``(H, W)`` in ``[0, 1]``) twice: as a heat map PNG at
    ``heat_name`` and as ``image`` in RGBA with the map as its alpha channel at ``rgba_name``; return their records.

    The folders of both names are created inside ``out_dir``.
    """
    files: FileRecords = {}
    for name, picture in ((heat_name, heat_map(alpha)), (rgba_name, with_alpha(image, alpha))):
        if "/" in name:
            ensure_dir(out_dir, name.rsplit("/", 1)[0])
        files[name] = write_png(out_dir, name, picture)
    return files


def _remove_stale_meta(out_dir: Path) -> None:
    """Delete an old ``meta.json`` first, so it never describes a half-replaced render."""
    remove_file(safe_join(out_dir, META_NAME))


def write_render(
    out_dir: Path,
    images: Any,
    labels: list[str],
    meta: dict[str, Any],
    *,
    grid: bool = True,
    per_image: bool = True,
    snapshots: Mapping[int, Any] | None = None,
    stem_names: list[str] | None = None,
    grid_labels: bool = True,
    animation: Animation | None = None,
    extra_files: Mapping[str, dict[str, Any]] | None = None,
    alpha: Any = None,
) -> FileRecords:
    """Write a render into ``out_dir`` and return ``{relative path: {sha256, bytes, width, height}}``.

    Writes per-image PNGs, ``grid.png``, one grid per snapshot step in
    ``snapshots/``, then ``meta.json`` (``meta`` plus ``"files"``) last; an old
    ``meta.json`` is removed first. ``meta`` itself is not modified.
    With ``per_image``, each snapshot step also gets one PNG per image in ``snapshots/step_NNNNN/``
    (named as the final images). With ``alpha`` (``(N, H, W)`` maps in ``[0, 1]``) each image's
    transparency map is written by ``write_alpha`` into ``alpha/``.
    ``grid_labels=False`` leaves the grid cells unlabelled. With ``animation`` the images are
    frames (an interpolation): ``strip.png``, ``interpolation.gif`` and, when asked and supported,
    ``interpolation.webp`` are written first. ``extra_files`` (records of files the caller already
    wrote into ``out_dir``) are listed in ``meta.json`` too.
    """
    out_dir = prepare_output_dir(out_dir)
    arr = to_uint8(images)
    stems = list(labels) if stem_names is None else list(stem_names)
    if len(labels) != len(arr) or len(stems) != len(arr):
        raise ValueError(f"write_render got {len(arr)} images, {len(labels)} labels and {len(stems)} stem names")
    cell_labels = list(labels) if grid_labels else None
    _remove_stale_meta(out_dir)
    extra = {**(_write_animation(out_dir, arr, animation) if animation is not None else {}), **(extra_files or {})}
    files: FileRecords = {}
    if per_image:
        for i, (image, stem) in enumerate(zip(arr, stems)):
            name = image_file_name(i, stem)
            files[name] = write_png(out_dir, name, image)
    if grid:
        files[GRID_NAME] = write_png(out_dir, GRID_NAME, make_grid(arr, cell_labels))
    if snapshots:
        ensure_dir(out_dir, SNAPSHOT_DIR)
        for step in sorted(snapshots):
            name = snapshot_file_name(step)
            snap = to_uint8(snapshots[step])
            files[name] = write_png(out_dir, name, make_grid(snap, cell_labels))
            if per_image:
                ensure_dir(out_dir, snapshot_file_name(step)[:-4])
                for i, (image, stem) in enumerate(zip(snap, stems)):
                    rel = snapshot_image_name(step, i, stem)
                    files[rel] = write_png(out_dir, rel, image)
    if alpha is not None:
        for i, (image, stem) in enumerate(zip(arr, stems)):
            files.update(write_alpha(out_dir, *alpha_file_names(i, stem), image, alpha[i]))
    files.update(extra)
    atomic_write_json(safe_join(out_dir, META_NAME), {**meta, "files": files})
    return files


@dataclass(frozen=True)
class Animation:
    """How the frames of an interpolation are played: frame time, back and forth, also as WebP."""

    duration_ms: int = 150
    pingpong: bool = True
    webp: bool = True


def _write_animation(out_dir: Path, arr: Any, animation: Animation) -> FileRecords:
    """``strip.png`` (the frames in one row), ``interpolation.gif`` and, when asked and supported, the WebP."""
    files: FileRecords = {STRIP_NAME: write_png(out_dir, STRIP_NAME, make_grid(arr, None, ncols=len(arr)))}
    h, w = int(arr.shape[1]), int(arr.shape[2])
    gif = gif_bytes(arr, duration_ms=animation.duration_ms, pingpong=animation.pingpong)
    files[GIF_NAME] = _write_file(out_dir, GIF_NAME, gif, w, h)
    if animation.webp and webp_supported():
        data = webp_bytes(arr, duration_ms=animation.duration_ms, pingpong=animation.pingpong)
        files[WEBP_NAME] = _write_file(out_dir, WEBP_NAME, data, w, h)
    return files
