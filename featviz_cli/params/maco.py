"""MACO (Fel et al. 2023, "Unlocking Feature Visualization for Deeper Networks with MAgnitude
Constrained Optimization"): optimize only the Fourier phase of the image; the magnitude
spectrum stays fixed to that of natural images (``params/spectrum.py``).

``MacoImage``, each step: standardize the phase (zero mean, std ``PHASE_STD``), spectrum =
magnitude * exp(i * phase), ``irfft2``, standardize the spatial image (zero mean, unit std),
times ``GAIN``; then colour recorrelation and a sigmoid (``to_valid_rgb``), as Xplique/Horama.
The phase is made Hermitian where the real FFT needs it (columns 0 and Nyquist), so that the
image's magnitude spectrum is EXACTLY the fixed one (times a constant). The DC term is zero:
the average colour is grey. The random multi-crop and noise transforms live in ``transforms.py``.

Two constants differ from Horama, both measured (``python -m benchmarks.maco_measure``):
- ``PHASE_STD``: a phase standardized to std 1 (Horama, Xplique) is far from a random phase:
  E[cos phase] = exp(-1/2) = 0.61, so 37 % of the image's variance adds up coherently in a spike
  at the image's corners (the origin of the periodic image), and standardizing the image then
  takes that contrast from everywhere else. With std pi the wrapped phase is nearly uniform
  (E[cos] = exp(-pi^2/2) < 0.01) and the corners hold their area's share (3 %).
- ``GAIN``: after the standardizations the contrast is fixed; through the 0.56-norm luminance
  row of the colour matrix and the sigmoid it gave a pixel std of 0.12 (the photos of tests/data:
  0.20), so renders were pale. Horama's images are as pale; its plots stretch them for display
  (percentile clip and min-max). A gain of 2 gives random-phase images the photos' pixel std
  (0.20), spread and colourfulness, and the model sees the contrast that is saved.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from ._registry import register_param
from .base import ImageParam
from .spectrum import load_magnitude, mirror_rows, real_fft_columns

#: Standard deviation of the standardized phase, in radians (see the module docstring).
PHASE_STD = math.pi
#: Contrast of the standardized image before the colour recorrelation and the sigmoid.
GAIN = 2.0


def hermitian_phase(phase: torch.Tensor, size: int) -> torch.Tensor:
    """Make ``phase`` (..., h, w//2+1) odd along the rows in the columns that need it: phi(-r) = -phi(r)."""
    cols = real_fft_columns(size)
    odd = (phase - mirror_rows(phase)) / 2
    keep = torch.ones(phase.shape[-1], dtype=torch.bool, device=phase.device)
    keep[cols] = False
    return torch.where(keep, phase, odd)


def standardize(t: torch.Tensor, std: float = 1.0) -> torch.Tensor:
    """``t`` with zero mean and standard deviation ``std`` per batch element."""
    t = t - t.mean(dim=tuple(range(1, t.dim())), keepdim=True)
    return t * (std / (t.std(dim=tuple(range(1, t.dim())), keepdim=True, unbiased=False) + 1e-5))


class MacoImage(ImageParam):
    """Phase-only Fourier image with a fixed magnitude spectrum; ``params`` is the phase alone."""

    def __init__(self, batch: int, size: int, magnitude: torch.Tensor, *, generator: torch.Generator,
                 device: torch.device, phase_std: float = PHASE_STD, gain: float = GAIN) -> None:
        super().__init__(decorrelate=True, output="sigmoid")
        self.size = size
        self.phase_std = phase_std
        self.gain = gain
        self.magnitude = magnitude.to(device)
        phase = torch.randn((batch, *magnitude.shape), generator=generator)
        self.phase = phase.to(device).requires_grad_(True)
        self.params = [self.phase]

    def spectrum(self) -> torch.Tensor:
        """The complex (B, 3, h, w//2+1) spectrum: the fixed magnitude with the current (standardized) phase."""
        p = hermitian_phase(standardize(self.phase, self.phase_std), self.size)
        return torch.polar(self.magnitude.expand_as(p), p)

    def raw(self) -> torch.Tensor:
        img = torch.fft.irfft2(self.spectrum(), s=(self.size, self.size), norm="ortho")
        return standardize(img, self.gain)

    def blur_(self, sigma: float) -> None:
        raise NotImplementedError("a MACO image keeps its magnitude spectrum; set regularizers.blur_every: 0")


@register_param("maco", describe=lambda o: f"maco(phase only, magnitude {o.get('spectrum') or 'natural (built-in)'}), "
                                           f"{o['size']}px")
def build_maco(o: Mapping[str, Any], batch: int, generator: torch.Generator, device: torch.device) -> MacoImage:
    """A ``MacoImage`` from the ``param:`` options; the magnitude from ``param.spectrum`` or the built-in one."""
    return MacoImage(batch, o["size"], load_magnitude(o.get("spectrum"), o["size"]), generator=generator,
                     device=device)
