"""Raw pixels (Lucid's ``pixel_image``), optionally in the decorrelated colour space."""
from __future__ import annotations

from typing import Any, Mapping

import torch

from ._registry import register_param
from .base import ImageParam, gaussian_blur


class PixelImage(ImageParam):
    """Raw pixels (in the decorrelated space when ``decorrelate``)."""

    def __init__(self, batch: int, size: int, *, sd: float, decorrelate: bool, output: str,
                 generator: torch.Generator, device: torch.device) -> None:
        super().__init__(decorrelate, output)
        init = torch.randn((batch, 3, size, size), generator=generator) * sd
        self.pixels = init.to(device).requires_grad_(True)
        self.params = [self.pixels]

    def raw(self) -> torch.Tensor:
        return self.pixels

    @torch.no_grad()
    def load_raw_(self, raw: torch.Tensor) -> None:
        self.pixels.copy_(raw.expand_as(self.pixels))

    @torch.no_grad()
    def blur_(self, sigma: float) -> None:
        self.pixels.copy_(gaussian_blur(self.pixels, sigma))

def describe_pixel_like(kind: str, o: Mapping[str, Any]) -> str:
    """The metadata line of a pixel or Fourier image: basis, colour space, output, size, init."""
    colour = "decorrelated colour" if o["decorrelate"] else "rgb"
    photo = f", from {o['init_image']}" if o.get("init_image") else ""
    return f"{kind}, {colour}, {o['output']}, {o['size']}px, sd={o['sd']}{photo}"


@register_param("pixel", describe=lambda o: describe_pixel_like("pixel", o), pixel_like=True)
def build_pixel(o: Mapping[str, Any], batch: int, generator: torch.Generator, device: torch.device) -> PixelImage:
    """A ``PixelImage`` from the ``param:`` options."""
    return PixelImage(batch, o["size"], sd=o["sd"], decorrelate=o["decorrelate"], output=o["output"],
                      generator=generator, device=device)
