"""The Fourier basis scaled by 1/f**decay_power (Lucid's ``fft_image``): the default parameterization."""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from ._registry import register_param
from .base import ImageParam, rfft2d_freqs
from .pixel import describe_pixel_like


class FFTImage(ImageParam):
    """Fourier coefficients scaled by 1/f**decay_power: gradient steps favour low frequencies."""

    def __init__(self, batch: int, size: int, *, sd: float, decay_power: float, decorrelate: bool,
                 output: str, generator: torch.Generator, device: torch.device) -> None:
        super().__init__(decorrelate, output)
        self.size = size
        freqs = rfft2d_freqs(size, size)
        self.freqs = freqs.to(device)
        scale = 1.0 / torch.clamp(freqs, min=1.0 / size) ** decay_power
        # Lucid divides the image by 4 (keeps the initial image away from saturation); the FFT
        # is linear, so that is folded into the spectrum's scale: one pass less each way.
        self.scale = (scale / 4.0).to(device)
        init = torch.randn((batch, 3, *freqs.shape, 2), generator=generator) * sd
        self.spectrum = init.to(device).requires_grad_(True)
        self.params = [self.spectrum]

    def raw(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        return torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho")

    @torch.no_grad()
    def load_raw_(self, raw: torch.Tensor) -> None:
        # The exact inverse of raw(): irfft2(rfft2(x)) == x for a real image x.
        spectrum = torch.fft.rfft2(raw.to(self.spectrum.device).float(), norm="ortho") / self.scale
        self.spectrum.copy_(torch.view_as_real(spectrum).expand_as(self.spectrum))

    @torch.no_grad()
    def blur_(self, sigma: float) -> None:
        # A Gaussian blur is a product with exp(-2 pi^2 sigma^2 f^2) in the Fourier domain.
        gain = torch.exp(-2 * math.pi**2 * sigma**2 * self.freqs**2)
        self.spectrum.mul_(gain[..., None])

@register_param("fft", describe=lambda o: describe_pixel_like(f"fft(decay_power={o['decay_power']})", o),
                pixel_like=True)
def build_fft(o: Mapping[str, Any], batch: int, generator: torch.Generator, device: torch.device) -> FFTImage:
    """An ``FFTImage`` from the ``param:`` options."""
    return FFTImage(batch, o["size"], sd=o["sd"], decay_power=o["decay_power"], decorrelate=o["decorrelate"],
                    output=o["output"], generator=generator, device=device)
