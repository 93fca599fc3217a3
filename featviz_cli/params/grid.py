"""Low-resolution parts shared across a grid of images (an activation grid): neighbours look alike.

``SharedGrid`` is the 2-D sibling of ``shared.SharedLowRes``: batch element ``r * cols + c``
is the cell at row r, column c; besides its own parameters it adds low-resolution tensors
held on coarser grids of cells (one for the whole grid, then a quarter, ...), interpolated
bilinearly across the cells, so that neighbouring cells share their coarse structure.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .base import ImageParam
from .shared import SharedParts

#: (cells per side of the coarse grid as a fraction of the grid's, downscale factor of the image).
GRID_PARTS: tuple[tuple[float, int], ...] = ((0.0, 4), (0.0, 8), (0.25, 4), (0.25, 8), (0.5, 8), (0.5, 16))


def spread(t: torch.Tensor, rows: int, cols: int, size: int) -> torch.Tensor:
    """(kr, kc, 3, h, w) parts as (rows * cols, 3, size, size): bilinear in space and across the cells."""
    kr, kc = t.shape[:2]
    t = F.interpolate(t.flatten(0, 1), size=(size, size), mode="bilinear", align_corners=False)
    if (kr, kc) == (rows, cols):
        return t
    flat = t.reshape(kr, kc, -1).permute(2, 0, 1)[None]  # (1, 3*S*S, kr, kc)
    if kr == 1 and kc == 1:
        return t.expand(rows * cols, -1, -1, -1)
    grid = F.interpolate(flat, size=(rows, cols), mode="bilinear", align_corners=True)[0]
    return grid.permute(1, 2, 0).reshape(rows * cols, 3, size, size)


class SharedGrid(SharedParts):
    """``base`` (one image per cell, row-major) plus low-resolution parts shared by neighbouring cells."""

    def __init__(self, base: ImageParam, rows: int, cols: int, size: int, *, sd: float = 0.01,
                 generator: torch.Generator, device: torch.device,
                 parts: Sequence[tuple[float, int]] = GRID_PARTS) -> None:
        super().__init__(base.decorrelate, base.output)
        self.base, self.rows, self.cols, self.size = base, rows, cols, size
        self.shared = []
        for frac, r in parts:
            kr, kc = (max(1, round(rows * frac)), max(1, round(cols * frac))) if frac else (1, 1)
            side = max(1, size // r)
            self.shared.append((torch.randn((kr, kc, 3, side, side), generator=generator) * sd)
                               .to(device).requires_grad_(True))
        self.params = list(base.params) + self.shared

    def upsample(self, t: torch.Tensor) -> torch.Tensor:
        return spread(t, self.rows, self.cols, self.size)
