"""Low-resolution parts shared by a batch (Lucid's neuron interpolation): neighbouring frames look alike.

``SharedLowRes`` wraps a pixel-like parameterization: each frame keeps its own image and adds
low-resolution tensors shared by all frames (at 1/2, 1/4, 1/8 and 1/16 of the size, and one at
1/8 that blends linearly across the frames), so neighbouring frames start alike and stay alike.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .base import ImageParam, gaussian_blur

#: (frames along the batch, downscale factor) of each shared low-resolution tensor (Lucid's notebook).
SHARED_PARTS: tuple[tuple[int, int], ...] = ((1, 2), (1, 4), (1, 8), (2, 8), (1, 16))


def lowres(t: torch.Tensor, batch: int, size: int) -> torch.Tensor:
    """Upsample a (k, 3, h, w) tensor to (batch, 3, size, size): bilinear in space, linear across the batch."""
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    if t.shape[0] == batch:
        return t
    if t.shape[0] == 1:
        return t.expand(batch, -1, -1, -1)
    pos = torch.linspace(0, t.shape[0] - 1, batch, device=t.device)
    lo = pos.floor().long().clamp(max=t.shape[0] - 2)
    w = (pos - lo).view(-1, 1, 1, 1).to(t.dtype)
    return (1 - w) * t[lo] + w * t[lo + 1]


class SharedParts(ImageParam):
    """``base`` plus low-resolution tensors ``shared``, each upsampled onto the batch by ``upsample``.

    Subclasses build ``shared`` (tensors whose last three axes are colour, height and width) and
    say how one becomes a (batch, 3, size, size) image; the sum, the blur and the rendering are here.
    """

    base: ImageParam
    shared: list[torch.Tensor]

    def upsample(self, t: torch.Tensor) -> torch.Tensor:
        """One shared tensor as a (batch, 3, size, size) addition to the image."""
        raise NotImplementedError

    def raw(self) -> torch.Tensor:
        out = self.base.raw()
        for t in self.shared:
            out = out + self.upsample(t)
        return out

    @torch.no_grad()
    def blur_(self, sigma: float) -> None:
        self.base.blur_(sigma)
        for t in self.shared:
            if min(t.shape[-2:]) > 3 * sigma + 1:
                t.copy_(gaussian_blur(t.flatten(0, -4), sigma).view_as(t))


class SharedLowRes(SharedParts):
    """``base`` (one image per frame) plus low-resolution parts shared by all frames."""

    def __init__(self, base: ImageParam, batch: int, size: int, *, sd: float = 0.01,
                 generator: torch.Generator, device: torch.device,
                 parts: Sequence[tuple[int, int]] = SHARED_PARTS) -> None:
        super().__init__(base.decorrelate, base.output)
        self.base, self.batch, self.size = base, batch, size
        self.shared = [
            (torch.randn((k, 3, max(1, size // r), max(1, size // r)), generator=generator) * sd)
            .to(device).requires_grad_(True)
            for k, r in parts
        ]
        self.params = list(base.params) + self.shared

    def upsample(self, t: torch.Tensor) -> torch.Tensor:
        return lowres(t, self.batch, self.size)
