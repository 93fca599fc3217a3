"""Helpers shared by the tests of featviz_cli.outputs: images, leftover temps, decoded animations, a disk
that fills up in the middle of a write."""
from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image


def random_images(n: int, h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    """``n`` random float images in [0, 1]."""
    return np.random.default_rng(seed).random((n, h, w, 3))


def temp_files(directory: Path) -> list[Path]:
    """Leftover temp files in ``directory`` (recursively)."""
    return [p for p in directory.rglob("*") if p.name.endswith(".tmp")]


def decoded_frames(data: bytes) -> tuple[list[np.ndarray], list[int], Any]:
    """Every frame of an animation (GIF, WebP) as RGB arrays, each frame's duration in ms, and the loop count."""
    frames, durations = [], []
    with Image.open(io.BytesIO(data)) as im:
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
            durations.append(im.info["duration"])
        return frames, durations, im.info.get("loop")


def assert_plays(data: bytes, frames: np.ndarray, order: list[int], duration_ms: int) -> None:
    """``data`` decodes to ``frames[i]`` for ``i`` in ``order``, pixel for pixel, each ``duration_ms`` long,
    looping forever."""
    decoded, durations, loop = decoded_frames(data)
    assert len(decoded) == len(order)
    for got, index in zip(decoded, order):
        assert np.array_equal(got, frames[index]), f"frame {index} is not the input"
    assert durations == [duration_ms] * len(order)
    assert loop == 0


class _FillsUp:
    """A file object whose first write puts ``keep(len(data))`` bytes on disk, then fails as a full disk does."""

    def __init__(self, f: Any, keep: Callable[[int], int], on_fail: Callable[[], None] | None) -> None:
        self._f, self._keep, self._on_fail = f, keep, on_fail

    def write(self, data: bytes) -> int:
        self._f.write(data[: self._keep(len(data))])
        self._f.flush()
        os.fsync(self._f.fileno())
        if self._on_fail is not None:
            self._on_fail()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> "_FillsUp":
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


def fill_disk(
    monkeypatch: pytest.MonkeyPatch,
    keep: Callable[[int], int],
    *,
    files_before: int = 0,
    on_fail: Callable[[], None] | None = None,
) -> None:
    """Make the disk fill up: the files opened with ``os.fdopen`` after the first ``files_before``
    get ``keep(len(data))`` bytes of their data, then ENOSPC (``on_fail`` runs just before it)."""
    real_fdopen = os.fdopen
    opened = [0]

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        opened[0] += 1
        f = real_fdopen(fd, *args, **kwargs)
        return f if opened[0] <= files_before else _FillsUp(f, keep, on_fail)

    monkeypatch.setattr(os, "fdopen", fdopen)
