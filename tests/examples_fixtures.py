"""Shared test data for the dataset-examples tests: a known red detector and a folder of images for it."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from featviz_cli.models import ModelInfo

RED_INFO = ModelInfo(name="rednet", input_size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


class RedNet(nn.Module):
    """A known detector: ``red`` channel 0 is R - (G + B) / 2, channel 1 its negation; ``blur`` averages 5x5,
    stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.red = nn.Conv2d(3, 2, 1, bias=False)
        self.red.weight.data.copy_(torch.tensor([[1.0, -0.5, -0.5], [-1.0, 0.5, 0.5]]).view(2, 3, 1, 1))
        self.blur = nn.Conv2d(2, 2, 5, stride=2, padding=2, groups=2, bias=False)
        self.blur.weight.data.fill_(1 / 25)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur(self.red(x))


def make_image(path: Path, size: tuple[int, int] = (96, 64), square: tuple[int, int, int] | None = None,
               colour: tuple[int, int, int] = (255, 0, 0), background: tuple[int, int, int] = (90, 110, 120),
               seed: int = 0) -> None:
    """A greyish noisy image, optionally with a ``colour`` square (x, y, side) in it."""
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(background)[None, None] + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255)
    if square is not None:
        x, y, s = square
        arr[y : y + s, x : x + s] = colour
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)


def red_folder(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """Twelve 96x64 images: red squares of decreasing redness at known places, two plain, one cyan.

    The network sees the centre 64x64 of each (x 16..80 in the image). Returns
    ``{file: (redness, x, y, side)}`` for the images with a square.
    """
    squares = {}
    reds = [250, 120, 230, 90, 200, 170, 60, 140, 30]
    for i, red in enumerate(reds):
        x, y = 20 + (i * 7) % 40, 4 + (i * 11) % 40
        name = f"img_{(i * 5) % 9:02d}.png"  # file order is not the ranking order
        make_image(root / name, square=(x, y, 18), colour=(red, 0, 0), seed=i)
        squares[name] = (red, x, y, 18)
    make_image(root / "plain_a.png", seed=20)
    make_image(root / "sub" / "plain_b.png", seed=21)
    make_image(root / "sub" / "cyan.png", square=(40, 20, 18), colour=(0, 255, 255), seed=22)
    return squares


def brute_top_k(values: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    """Per unit (a column of ``values``, a row per image), the indices of the best k images, ties to the earlier."""
    out = []
    for u in range(values.shape[1]):
        keyed = sorted(range(values.shape[0]), key=lambda i: ((-1 if largest else 1) * float(values[i, u]), i))
        out.append(keyed[:k])
    return torch.tensor(out)


DAMAGES = ("corrupt", "truncate", "delete")


def damage(path: Path, how: str) -> None:
    """Damage a file as a bad copy or disk would: ``corrupt`` (same size, 4 bytes in the middle inverted),
    ``truncate`` (the first half kept) or ``delete``."""
    data = path.read_bytes()
    if how == "corrupt":
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid : mid + 4]) + data[mid + 4 :])
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.unlink()


def file_states(directory: Path) -> dict[str, tuple[str, int, int]]:
    """Every file under ``directory``: (sha256, inode, mtime in ns), by path relative to it."""
    out = {}
    for p in sorted(directory.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[p.relative_to(directory).as_posix()] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_ino,
                                                         st.st_mtime_ns)
    return out


def touched(before: dict[str, tuple[str, int, int]], after: dict[str, tuple[str, int, int]]) -> set[str]:
    """The files of ``after`` that are new or were written since ``before`` (other inode or mtime)."""
    return {rel for rel, (_, ino, mtime) in after.items() if before.get(rel, (None, None, None))[1:] != (ino, mtime)}


def same_bytes(a: Path, b: Path) -> bool:
    """True if the two directories hold the same files with the same bytes."""
    return {k: v[0] for k, v in file_states(a).items()} == {k: v[0] for k, v in file_states(b).items()}
