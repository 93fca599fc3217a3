"""The images of a pass: how many, how each is decoded upright, and the network's view of it.

The folder is walked by :func:`featviz_cli.images.iter_images` (sorted, recursive), so
"the first N files" is a position a pass can resume from. :class:`View` is the geometry
of the usual evaluation crop (shorter side resized, centre square), :func:`load_for_network`
decodes one image into that view, and :class:`ImageChunks` streams consecutive chunks of
the folder through DataLoader worker processes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from ..images import iter_images


def count_images(root: Path) -> int:
    """How many files :func:`~featviz_cli.images.iter_images` yields (one walk, no memory)."""
    return sum(1 for _ in iter_images(root))


@dataclass(frozen=True)
class View:
    """How a ``width`` x ``height`` image becomes the network's ``size`` x ``size`` input.

    The shorter side is resized to ``size`` and the centre ``size`` x ``size`` square is
    taken (the usual evaluation crop). ``to_source`` maps input pixels back to the image.
    """

    width: int
    height: int
    size: int

    @property
    def resized(self) -> tuple[int, int]:
        """(width, height) after resizing the shorter side to ``size``."""
        short = min(self.width, self.height)
        return (max(self.size, round(self.width * self.size / short)),
                max(self.size, round(self.height * self.size / short)))

    @property
    def offset(self) -> tuple[int, int]:
        """(left, top) of the centre crop in resized pixels."""
        rw, rh = self.resized
        return (rw - self.size) // 2, (rh - self.size) // 2

    def to_source(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """A box ``(x0, y0, x1, y1)`` in input pixels as a box in the image's own pixels."""
        rw, rh = self.resized
        left, top = self.offset
        sx, sy = self.width / rw, self.height / rh
        x0, y0, x1, y1 = box
        return ((x0 + left) * sx, (y0 + top) * sy, (x1 + left) * sx, (y1 + top) * sy)

    @property
    def seen(self) -> tuple[float, float, float, float]:
        """The part of the image the network sees, in the image's pixels."""
        return self.to_source((0, 0, self.size, self.size))


def view_of(width: int, height: int, size: int) -> View:
    """The :class:`View` of an image of ``width`` x ``height`` for a ``size`` px network input."""
    return View(int(width), int(height), int(size))


def open_rgb(path: Path, draft_for: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Open an image upright (EXIF orientation applied) as RGB; also its full upright (width, height).

    ``draft_for`` lets a JPEG decode at a reduced scale that still covers a ``draft_for`` px
    network input (much faster for large photos); the image is then smaller than its file.
    """
    with Image.open(path) as im:
        stored_w, stored_h = im.size
        swapped = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        width, height = (stored_h, stored_w) if swapped else (stored_w, stored_h)
        if draft_for is not None:
            rw, rh = view_of(width, height, draft_for).resized
            im.draft("RGB", (rh, rw) if swapped else (rw, rh))  # a no-op except for JPEG
        return ImageOps.exif_transpose(im).convert("RGB"), (width, height)


def load_for_network(path: Path, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The network's view of an image: ``(size, size, 3)`` uint8, and the image's upright (width, height)."""
    im, (w, h) = open_rgb(path, draft_for=size)
    # < 1 when a JPEG was decoded at a reduced scale; per axis, as the draft rounds each side up
    sx, sy = im.size[0] / w, im.size[1] / h
    x0, y0, x1, y1 = view_of(w, h, size).seen
    out = im.resize((size, size), Image.Resampling.BILINEAR, box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy))
    return np.asarray(out, dtype=np.uint8), (w, h)


class ImageChunks(torch.utils.data.IterableDataset):
    """Consecutive chunks of the folder's images from index ``start`` on, decoded for the network.

    Worker ``w`` of ``n`` takes chunks ``w, w + n, ...``; the DataLoader returns workers'
    results in turn, so chunks arrive in order. A file that cannot be read gives a black
    image with ``ok`` False and the reason, never an exception.
    """

    def __init__(self, root: Path, start: int, chunk: int, size: int) -> None:
        super().__init__()
        self.root, self.start, self.chunk, self.size = Path(root), start, chunk, size

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        items: list[tuple[int, str]] = []
        for i, rel in enumerate(iter_images(self.root)):
            if i < self.start or ((i - self.start) // self.chunk) % workers != worker:
                continue
            items.append((i, rel))
            if len(items) == self.chunk:
                yield self._load(items)
                items = []
        if items:
            yield self._load(items)

    def _load(self, items: list[tuple[int, str]]) -> dict[str, Any]:
        images = np.zeros((len(items), self.size, self.size, 3), dtype=np.uint8)
        ok, errors = [], []
        for j, (_, rel) in enumerate(items):
            try:
                images[j] = load_for_network(self.root / rel, self.size)[0]
                ok.append(True)
                errors.append("")
            except Exception as e:  # noqa: BLE001 - any unreadable file is reported, never fatal
                ok.append(False)
                errors.append(f"{type(e).__name__}: {e}".splitlines()[0][:200])
        return {
            "start": items[0][0],
            "images": torch.from_numpy(images).permute(0, 3, 1, 2),
            "ok": torch.tensor(ok),
            "paths": [rel for _, rel in items],
            "errors": errors,
        }
