"""MACO (Fel et al. 2023, "Unlocking Feature Visualization for Deeper Networks with MAgnitude
Constrained Optimization"): optimize only the Fourier phase of the image; the magnitude
spectrum stays fixed to that of natural images (``params/spectrum.py``).

``MacoImage``: image = standardize(irfft2(magnitude * exp(i * phase))) in the decorrelated
colour space, then colour recorrelation and a sigmoid (as Xplique/Horama). The phase is
standardized per image each step (as Xplique) and made Hermitian where the real FFT needs it
(columns 0 and Nyquist), so that the image's magnitude spectrum is EXACTLY the fixed one
(times a constant). The DC term is set to zero: the average colour is grey.
The random multi-crop and noise transforms live in ``transforms.py`` (``Crops``, ``Noise``).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

from ._registry import register_param
from .base import ImageParam
from .spectrum import load_magnitude, mirror_rows, real_fft_columns


def hermitian_phase(phase: torch.Tensor, size: int) -> torch.Tensor:
    """Make ``phase`` (..., h, w//2+1) odd along the rows in the columns that need it: phi(-r) = -phi(r)."""
    cols = real_fft_columns(size)
    odd = (phase - mirror_rows(phase)) / 2
    keep = torch.ones(phase.shape[-1], dtype=torch.bool, device=phase.device)
    keep[cols] = False
    return torch.where(keep, phase, odd)


class MacoImage(ImageParam):
    """Phase-only Fourier image with a fixed magnitude spectrum; ``params`` is the phase alone."""

    def __init__(self, batch: int, size: int, magnitude: torch.Tensor, *, generator: torch.Generator,
                 device: torch.device) -> None:
        super().__init__(decorrelate=True, output="sigmoid")
        self.size = size
        self.magnitude = magnitude.to(device)
        phase = torch.randn((batch, *magnitude.shape), generator=generator)
        self.phase = phase.to(device).requires_grad_(True)
        self.params = [self.phase]

    def spectrum(self) -> torch.Tensor:
        """The complex (B, 3, h, w//2+1) spectrum: the fixed magnitude with the current (standardized) phase."""
        p = self.phase
        p = (p - p.mean(dim=(1, 2, 3), keepdim=True)) / (p.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
        p = hermitian_phase(p, self.size)
        return torch.polar(self.magnitude.expand_as(p), p)

    def raw(self) -> torch.Tensor:
        img = torch.fft.irfft2(self.spectrum(), s=(self.size, self.size), norm="ortho")
        img = img - img.mean(dim=(1, 2, 3), keepdim=True)
        return img / (img.std(dim=(1, 2, 3), keepdim=True, unbiased=False) + 1e-5)

    def blur_(self, sigma: float) -> None:
        raise NotImplementedError("a MACO image keeps its magnitude spectrum; set regularizers.blur_every: 0")


@register_param("maco", describe=lambda o: f"maco(phase only, magnitude {o.get('spectrum') or '1/f'}), {o['size']}px")
def build_maco(o: Mapping[str, Any], batch: int, generator: torch.Generator, device: torch.device) -> MacoImage:
    """A ``MacoImage`` from the ``param:`` options; the magnitude from ``param.spectrum`` or 1/f."""
    return MacoImage(batch, o["size"], load_magnitude(o.get("spectrum"), o["size"]), generator=generator,
                     device=device)
