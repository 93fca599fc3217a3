"""Write a render's results: PNGs, labelled grids, snapshot grids and ``meta.json``.

Every file is written atomically (temp file in the same directory, fsync,
``os.replace``), so a file that exists is always complete, and ``meta.json`` is
written last, so its presence means the whole render is complete. The same
inputs give byte-identical files. Every path goes through :func:`safe_join`,
so nothing is written outside the output directory.

No torch import here: images are numpy arrays ``(N, H, W, 3)``, float in
``[0, 1]`` or uint8; anything with ``.detach()`` (a torch tensor) is converted.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import re
import secrets
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import OutputError

PNG_COMPRESS_LEVEL = 6
MAX_NAME_LENGTH = 100
META_NAME = "meta.json"
GRID_NAME = "grid.png"
SNAPSHOT_DIR = "snapshots"
_WRITE_FIX = "check that the directory is writable and that there is disk space"
_UNSAFE_CHARS = re.compile(r"_*[^A-Za-z0-9._-]+_*")  # with the underscores beside it
_ELLIPSIS = "..."

# ---------------------------------------------------------------- atomic writes


def _write_error(path: Path, err: BaseException, action: str = "cannot write", fix: str = _WRITE_FIX) -> OutputError:
    """An OutputError naming ``path``, the OS reason and the fix, on one line."""
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return OutputError(f"{action} {path}: {reason}; {fix}")


def _fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename in it is durable; a no-op where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temp(directory: Path, name: str) -> tuple[int, Path]:
    """Create a new hidden ``.<name>.<random>.tmp`` file in ``directory``; return (fd, path).

    ``os.open`` with mode 0o666 lets the umask decide the final permissions,
    as an ordinary ``open()`` would.
    """
    while True:
        tmp = directory / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file, fsync, ``os.replace``, fsync dir.

    Raises OutputError naming the path on any OS failure; the temp file is removed
    and an existing file at ``path`` is left untouched.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        fd, tmp = _create_temp(path.parent, path.name)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise _write_error(path, err) from err
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (newlines are written as given)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(obj: Any) -> Any:
    """A JSON-ready copy of ``obj``: NaN/inf become None; numpy/torch values, tuples, paths converted."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {_json_key(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return [_jsonable(v) for v in sorted(obj, key=repr)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "detach"):
        obj = obj.detach().cpu()
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return _jsonable(obj.tolist())
    raise TypeError(f"cannot write a {type(obj).__name__} to JSON: {obj!r}")


def _json_key(key: Any) -> Any:
    """A dict key JSON accepts: str, int, float, bool or None are kept; others become str."""
    if key is None or isinstance(key, (str, int, float, bool)):
        return key
    return str(key)


def json_text(obj: Any) -> str:
    """Deterministic JSON text: indent 2, non-ASCII kept, NaN/inf as null, trailing newline."""
    return json.dumps(_jsonable(obj), ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON (see :func:`json_text`) to ``path`` atomically."""
    atomic_write_text(path, json_text(obj))


# ---------------------------------------------------------------- hashes


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of the file at ``path``; OutputError if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as err:
        raise _write_error(Path(path), err, "cannot read") from err
    return digest.hexdigest()


# ---------------------------------------------------------------- paths


def _short_hash(text: str) -> str:
    """First 8 hex digits of the SHA-256 of ``text``."""
    return sha256_bytes(text.encode("utf-8", "surrogatepass"))[:8]


def sanitize_filename(text: str) -> str:
    """A safe file-name component from a layer/unit name.

    Runs of characters outside ``[A-Za-z0-9._-]`` (with any ``_`` next to them)
    become one ``_``; other underscores are kept as they are; leading and
    trailing dots (and underscores that stand for trailing unsafe characters) are removed. Never empty, ``.`` or ``..``, at most 100 characters;
    a short hash of the original is appended when it is truncated or has no
    letters or digits left (``"features.3/conv:0"`` -> ``"features.3_conv_0"``).
    """
    name = _UNSAFE_CHARS.sub("_", text)
    if not text.endswith("_"):  # "goldfish (1)" -> "goldfish_1", not "goldfish_1_"
        name = name.rstrip("_")
    name = name.strip(".")
    if not re.search(r"[A-Za-z0-9]", name):
        return f"unnamed-{_short_hash(text)}" if text else "unnamed"
    if len(name) > MAX_NAME_LENGTH:
        suffix = f"-{_short_hash(text)}"
        name = name[: MAX_NAME_LENGTH - len(suffix)].rstrip(".") + suffix
    return name


def safe_join(root: Path, name: str) -> Path:
    """``root / name`` resolved, or OutputError if it is not strictly inside ``root``.

    ``name`` may contain ``/`` for sub-directories; absolute names, ``..``
    escapes and symlinks pointing outside ``root`` are refused.
    """
    try:
        base = Path(root).resolve()
        target = (base / name).resolve()
    except (OSError, ValueError) as err:
        raise OutputError(f"invalid output file name {name!r} in {root}: {err}; use a plain relative name") from err
    if target == base or base not in target.parents:
        raise OutputError(
            f"refusing to write {name!r}: it resolves to {target}, outside the output directory {base}; "
            "use a relative name without '..'"
        )
    return target


def prepare_output_dir(path: Path) -> Path:
    """Create the output directory (with parents) and check it is writable; return it resolved.

    OutputError naming the path and the fix if it is a file, cannot be created,
    or a test file cannot be created in it.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"output directory {path} exists and is not a directory; choose another output.dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(
            path, err, "cannot create output directory", "check that its parents are writable directories, not files"
        ) from err
    try:
        fd, tmp = _create_temp(path, "featviz-write-test")
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise _write_error(path, err, "cannot write to output directory") from err
    return path.resolve()


# ---------------------------------------------------------------- images


def _to_numpy(images: Any) -> np.ndarray:
    """A numpy array from a numpy array, a nested list or (duck-typed) a torch tensor."""
    if hasattr(images, "detach"):
        tensor = images.detach().cpu()
        try:
            return tensor.numpy()
        except TypeError:  # bfloat16 and other dtypes numpy lacks
            return tensor.float().numpy()
    return np.asarray(images)


def to_uint8(images: Any) -> np.ndarray:
    """Images as a contiguous uint8 array ``(N, H, W, 3)``.

    Floats are read as ``[0, 1]``: clipped, scaled by 255 and rounded half to even
    (NaN becomes 0); integers are clipped to ``[0, 255]``. One ``(H, W, 3)`` image
    is given a batch axis.
    """
    arr = _to_numpy(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"images must have shape (N, H, W, 3) or (H, W, 3), got {tuple(arr.shape)}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.integer):
        return np.ascontiguousarray(np.clip(arr, 0, 255).astype(np.uint8))
    values = np.nan_to_num(np.asarray(arr, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    return np.ascontiguousarray(np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8))


def png_bytes(image_uint8: np.ndarray) -> bytes:
    """Deterministic PNG of one ``(H, W, 3)`` uint8 image: no metadata, fixed compression."""
    arr = np.ascontiguousarray(image_uint8)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"png_bytes needs a (H, W, 3) uint8 array, got {arr.dtype} {tuple(arr.shape)}")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def _label_font() -> Any:
    """Pillow's built-in bitmap font (Latin-1, about 6x11 px a glyph; same pixels everywhere)."""
    return getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)()


def _latin1(text: str) -> str:
    """``text`` with characters the bitmap font cannot draw replaced by ``?``."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _fit_text(text: str, font: Any, width: int) -> str:
    """``text``, or its end after an ellipsis (``...t:12``), so it fits in ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    for start in range(1, len(text) + 1):
        candidate = _ELLIPSIS + text[start:].lstrip(".")
        if font.getlength(candidate) <= width:
            return candidate
    return ""


def _label_strip(text: str, width: int, height: int) -> np.ndarray:
    """A white ``(height, width, 3)`` strip with ``text`` in black, centred, clipped to fit."""
    strip = Image.new("RGB", (width, height), (255, 255, 255))
    font = _label_font()
    fitted = _fit_text(_latin1(text), font, width)
    if fitted:
        left, top, right, bottom = font.getbbox(fitted)
        x = (width - (right - left)) // 2 - left
        y = (height - (bottom - top)) // 2 - top
        ImageDraw.Draw(strip).text((x, y), fitted, fill=(0, 0, 0), font=font)
    return np.asarray(strip)


def default_label_height() -> int:
    """Height of a grid label strip: the font's line height plus a pixel above and below."""
    _, top, _, bottom = _label_font().getbbox("Ag_|")
    return bottom - top + 2


def make_grid(
    images_uint8: Any,
    labels: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    pad: int = 2,
    label_height: int | None = None,
) -> np.ndarray:
    """Tile images into one ``(H, W, 3)`` uint8 image with white padding and labels.

    ``ncols`` defaults to ``ceil(sqrt(n))``. With labels, each cell gets a strip
    below it (``label_height`` px, default :func:`default_label_height`) with the
    label in Pillow's bitmap font, shortened with ``...`` to the cell width.
    Images are never scaled.
    """
    images = to_uint8(images_uint8)
    n, h, w, _ = images.shape
    if n == 0:
        raise ValueError("make_grid needs at least one image")
    if labels is not None and len(labels) != n:
        raise ValueError(f"make_grid got {n} images but {len(labels)} labels")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    cols = min(n, ncols if ncols is not None else math.ceil(math.sqrt(n)))
    if cols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    rows = math.ceil(n / cols)
    strip_h = 0 if labels is None else (default_label_height() if label_height is None else label_height)
    cell_h = h + strip_h
    grid = np.full((rows * cell_h + (rows + 1) * pad, cols * w + (cols + 1) * pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        y = pad + (i // cols) * (cell_h + pad)
        x = pad + (i % cols) * (w + pad)
        grid[y : y + h, x : x + w] = images[i]
        if labels is not None and strip_h > 0:
            grid[y + h : y + cell_h, x : x + w] = _label_strip(labels[i], w, strip_h)
    return grid


# ---------------------------------------------------------------- a render's files


def write_png(out_dir: Path, relative: str, image: np.ndarray) -> dict[str, Any]:
    """Write one ``(H, W, 3)`` uint8 image as a PNG at ``out_dir/relative`` atomically; return its record.

    The record is ``{sha256, bytes, width, height}``.
    """
    data = png_bytes(image)
    atomic_write_bytes(safe_join(out_dir, relative), data)
    return {"sha256": sha256_bytes(data), "bytes": len(data), "width": int(image.shape[1]), "height": int(image.shape[0])}


def _write_png(out_dir: Path, relative: str, image: np.ndarray, files: dict[str, dict[str, Any]]) -> None:
    """Write ``image`` as a PNG at ``out_dir/relative`` and record it in ``files``."""
    files[relative] = write_png(out_dir, relative, image)


def write_bytes_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` atomically unless ``path`` already holds exactly these bytes; True if written."""
    try:
        if Path(path).read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write_bytes(path, data)
    return True


def ensure_dir(out_dir: Path, relative: str) -> Path:
    """Create ``out_dir/relative`` with its parents (inside ``out_dir``); OutputError if impossible."""
    path = safe_join(out_dir, relative)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(path, err, "cannot create directory") from err
    return path


def _remove_stale_meta(out_dir: Path) -> None:
    """Delete an old ``meta.json`` first, so it never describes a half-replaced render."""
    meta_path = safe_join(out_dir, META_NAME)
    try:
        meta_path.unlink()
    except FileNotFoundError:
        pass
    except OSError as err:
        raise _write_error(meta_path, err, "cannot remove") from err


def image_file_name(index: int, stem: str) -> str:
    """The per-image file name: ``{index:03d}_{sanitized stem}.png``."""
    return f"{index:03d}_{sanitize_filename(stem)}.png"


def snapshot_file_name(step: int) -> str:
    """The snapshot grid path relative to the output directory: ``snapshots/step_{step:05d}.png``."""
    return f"{SNAPSHOT_DIR}/step_{step:05d}.png"


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
) -> dict[str, dict[str, Any]]:
    """Write a render into ``out_dir`` and return ``{relative path: {sha256, bytes, width, height}}``.

    Writes per-image PNGs, ``grid.png``, one grid per snapshot step in
    ``snapshots/``, then ``meta.json`` (``meta`` plus ``"files"``) last; an old
    ``meta.json`` is removed first. ``meta`` itself is not modified.
    ``grid_labels=False`` leaves the grid cells unlabelled.
    """
    out_dir = prepare_output_dir(out_dir)
    arr = to_uint8(images)
    stems = list(labels) if stem_names is None else list(stem_names)
    if len(labels) != len(arr) or len(stems) != len(arr):
        raise ValueError(f"write_render got {len(arr)} images, {len(labels)} labels and {len(stems)} stem names")
    cell_labels = list(labels) if grid_labels else None
    _remove_stale_meta(out_dir)
    files: dict[str, dict[str, Any]] = {}
    if per_image:
        for i, (image, stem) in enumerate(zip(arr, stems)):
            _write_png(out_dir, image_file_name(i, stem), image, files)
    if grid:
        _write_png(out_dir, GRID_NAME, make_grid(arr, cell_labels), files)
    if snapshots:
        _make_subdir(out_dir, SNAPSHOT_DIR)
        for step in sorted(snapshots):
            _write_png(out_dir, snapshot_file_name(step), make_grid(snapshots[step], cell_labels), files)
    atomic_write_json(safe_join(out_dir, META_NAME), {**meta, "files": files})
    return files


def _make_subdir(out_dir: Path, name: str) -> Path:
    """Create ``out_dir/name`` (inside ``out_dir``); OutputError if it cannot be created."""
    path = safe_join(out_dir, name)
    try:
        path.mkdir(exist_ok=True)
    except OSError as err:
        raise _write_error(path, err, "cannot create directory") from err
    return path
