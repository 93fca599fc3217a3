"""Reading photos: one image as a square tensor, and the images of a folder.

Used to start a render from a photo (``param.init_image``) and to compute a
natural-image spectrum for MACO (``featviz spectrum DIR``), and to stream a folder
for dataset examples (``iter_images``: sorted, memory-bounded walk).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .errors import SpecError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def load_image(path: str | Path, size: int, *, field: str = "param.init_image") -> torch.Tensor:
    """The photo at ``path`` as a (3, size, size) float tensor in [0, 1].

    The shorter side is resized to ``size`` (bicubic, antialiased), then the centre square
    is cut out. An unreadable file raises ``SpecError`` naming ``field``.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path).expanduser()
    if not p.is_file():
        raise SpecError(field, f"{p}: no such file; check the path (relative paths start at the current directory).")
    try:
        with Image.open(p) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            im = im.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=None)
            left, top = (nw - size) // 2, (nh - size) // 2
            im = im.crop((left, top, left + size, top + size))
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise SpecError(field, f"{p}: cannot read an image ({e}); give a JPEG, PNG or WebP file.") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).clamp(0, 1)


def iter_images(root: Path) -> Iterator[str]:
    """Relative POSIX paths of the image files under ``root``, recursively, in sorted order.

    Extensions are matched case-insensitively; hidden files and folders (``.name``) and
    symlinked folders are skipped; unreadable folders are skipped. The order is the same
    on every run and every platform, which makes "the first N files" a resumable position.
    """
    root = Path(root)

    def walk(directory: Path, prefix: str) -> Iterator[str]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{prefix}{entry.name}"
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = not is_dir and entry.is_file()
            except OSError:
                continue
            if is_dir:
                yield from walk(Path(entry.path), rel + "/")
            elif is_file and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                yield rel

    yield from walk(root, "")


def list_images(folder: str | Path, *, field: str = "DIR") -> list[Path]:
    """The image files under ``folder`` (recursive), sorted; ``SpecError`` when there are none."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise SpecError(field, f"{root}: not a directory; give a folder of images.")
    files = [root / rel for rel in iter_images(root)]
    if not files:
        raise SpecError(field, f"{root}: no images found ({', '.join(IMAGE_SUFFIXES)}).")
    return files
