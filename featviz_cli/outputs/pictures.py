"""Pictures as bytes: uint8 images, deterministic PNGs, labelled grids and GIF/WebP animations.

No torch import here: images are numpy arrays ``(N, H, W, 3)``, float in ``[0, 1]``
or uint8; anything with ``.detach()`` (a torch tensor) is converted. The same
images give the same pixels and the same bytes on every machine (Pillow's bitmap
font, fixed PNG compression, no metadata).
"""
from __future__ import annotations

import functools
import io
import math
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PNG_COMPRESS_LEVEL = 6
_ELLIPSIS = "..."

# ---------------------------------------------------------------- arrays and PNGs


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
    """Deterministic PNG of one ``(H, W, 3)`` (RGB) or ``(H, W, 4)`` (RGBA) uint8 image: no metadata, fixed compression."""
    arr = np.ascontiguousarray(image_uint8)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"png_bytes needs a (H, W, 3) or (H, W, 4) uint8 array, got {arr.dtype} {tuple(arr.shape)}")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
    return buf.getvalue()


# ---------------------------------------------------------------- transparency maps

#: Anchor colours of the heat map (matplotlib's "inferno" at 0, 1/6, ..., 1), linearly interpolated.
_HEAT_ANCHORS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                          [245, 125, 21], [252, 255, 164]], dtype=np.float64)


def heat_map(values: Any) -> np.ndarray:
    """A ``(H, W)`` map in ``[0, 1]`` as a ``(H, W, 3)`` uint8 heat map: black-purple (0) to pale yellow (1)."""
    v = np.clip(np.nan_to_num(np.asarray(_to_numpy(values), dtype=np.float64)), 0.0, 1.0)
    if v.ndim != 2:
        raise ValueError(f"heat_map needs a (H, W) map, got shape {tuple(v.shape)}")
    pos = v * (len(_HEAT_ANCHORS) - 1)
    lo = np.minimum(pos.astype(np.int64), len(_HEAT_ANCHORS) - 2)
    t = (pos - lo)[..., None]
    rgb = (1 - t) * _HEAT_ANCHORS[lo] + t * _HEAT_ANCHORS[lo + 1]
    return np.ascontiguousarray(np.rint(rgb).astype(np.uint8))


def with_alpha(image: Any, alpha: Any) -> np.ndarray:
    """One image (``(H, W, 3)``, see ``to_uint8``) with a ``(H, W)`` map in ``[0, 1]`` as its alpha: ``(H, W, 4)`` uint8."""
    rgb = to_uint8(image)
    if len(rgb) != 1:
        raise ValueError(f"with_alpha needs one image, got {len(rgb)}")
    a = to_uint8(np.repeat(np.asarray(_to_numpy(alpha), dtype=np.float64)[..., None], 3, axis=-1))[0, ..., :1]
    if a.shape[:2] != rgb.shape[1:3]:
        raise ValueError(f"alpha map {a.shape[:2]} and image {rgb.shape[1:3]} differ in size")
    return np.ascontiguousarray(np.concatenate([rgb[0], a], axis=-1))


# ---------------------------------------------------------------- labels and grids


@functools.lru_cache(maxsize=1)
def label_font() -> Any:
    """Pillow's built-in bitmap font (Latin-1, about 6x11 px a glyph; same pixels everywhere)."""
    return getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)()


def _latin1(text: str) -> str:
    """``text`` with characters the bitmap font cannot draw replaced by ``?``."""
    return text.encode("latin-1", "replace").decode("latin-1")


def fit_text(text: str, font: Any, width: int) -> str:
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
    font = label_font()
    fitted = fit_text(_latin1(text), font, width)
    if fitted:
        left, top, right, bottom = font.getbbox(fitted)
        x = (width - (right - left)) // 2 - left
        y = (height - (bottom - top)) // 2 - top
        ImageDraw.Draw(strip).text((x, y), fitted, fill=(0, 0, 0), font=font)
    return np.asarray(strip)


def default_label_height() -> int:
    """Height of a grid label strip: the font's line height plus a pixel above and below."""
    _, top, _, bottom = label_font().getbbox("Ag_|")
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


def preview_grid(images_uint8: Any, labels: Sequence[str] | None = None, *, min_side: int = 128) -> np.ndarray:
    """A labelled :func:`make_grid` for viewing (a notebook's preview): images smaller than ``min_side`` px
    enlarged by a whole factor (nearest neighbour, pixels stay sharp) so the labels fit."""
    images = to_uint8(images_uint8)
    factor = max(1, -(-min_side // max(1, max(images.shape[1:3]))))
    if factor > 1:
        images = images.repeat(factor, axis=1).repeat(factor, axis=2)
    return make_grid(images, labels)


# ---------------------------------------------------------------- animations


def webp_supported() -> bool:
    """Whether this Pillow can write animated WebP."""
    from PIL import features

    return bool(features.check("webp"))


def _animation_frames(images_uint8: np.ndarray, pingpong: bool) -> list[np.ndarray]:
    """The frames in playing order: as given, or there and back (``0 1 2 3 2 1``) with ``pingpong``."""
    """The frames in playing order: as given, or there and back (``0 1 2 3 2 1``) with ``pingpong``."""
    frames = list(images_uint8)
    return frames + frames[-2:0:-1] if pingpong and len(frames) > 2 else frames


def gif_bytes(images: Any, *, duration_ms: int = 150, pingpong: bool = True) -> bytes:
    """A looping animated GIF of the images, one shared 256-colour palette (no flicker), no dithering."""
    frames = _animation_frames(to_uint8(images), pingpong)
    palette = Image.fromarray(np.concatenate(frames, axis=1)).quantize(256, method=Image.Quantize.MEDIANCUT)
    indexed = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    buf = io.BytesIO()
    indexed[0].save(buf, format="GIF", save_all=True, append_images=indexed[1:], duration=duration_ms,
                    loop=0, optimize=False, disposal=1)
    return buf.getvalue()


def webp_bytes(images: Any, *, duration_ms: int = 150, pingpong: bool = True, lossless: bool = True) -> bytes:
    """A looping animated WebP of the images (lossless by default)."""
    frames = [Image.fromarray(f) for f in _animation_frames(to_uint8(images), pingpong)]
    buf = io.BytesIO()
    frames[0].save(buf, format="WEBP", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0,
                   lossless=lossless, quality=100 if lossless else 80, method=4)
    return buf.getvalue()
