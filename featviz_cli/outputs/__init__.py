"""Outputs, by job: ``files`` (atomic writes, JSON, hashes, safe paths), ``pictures`` (uint8
images, PNGs, labelled grids, GIF/WebP) and ``layout`` (a render's files and ``meta.json``).

Re-exported here: the names used outside the package. No torch import.
"""
from __future__ import annotations

from .files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    ensure_dir,
    output_dir,
    prepare_output_dir,
    record_problem,
    remove_temps,
    safe_join,
    sanitize_filename,
    sha256_bytes,
    sha256_file,
    write_bytes_if_changed,
)
from .layout import Animation, alpha_file_names, write_alpha, write_png, write_render
from .pictures import gif_bytes, heat_map, make_grid, png_bytes, preview_grid, to_uint8, webp_supported, with_alpha

__all__ = [
    "Animation",
    "alpha_file_names",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "ensure_dir",
    "gif_bytes",
    "heat_map",
    "make_grid",
    "preview_grid",
    "png_bytes",
    "output_dir",
    "prepare_output_dir",
    "record_problem",
    "remove_temps",
    "safe_join",
    "sanitize_filename",
    "sha256_bytes",
    "sha256_file",
    "to_uint8",
    "webp_supported",
    "with_alpha",
    "write_alpha",
    "write_bytes_if_changed",
    "write_png",
    "write_render",
]
