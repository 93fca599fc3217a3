"""Magnitude spectra for MACO: the built-in natural spectrum, a folder's mean spectrum, files, resampling.

``compute_spectrum`` averages the magnitude spectra of a folder of photos in the decorrelated
colour space (``featviz spectrum DIR -o spectrum.pt``); ``load_magnitude`` reads such a file for
an image of a given size (``natural_magnitude`` when there is none). The magnitudes are made
symmetric where the real FFT needs it, with zero DC, so a phase-only image has exactly this spectrum.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import SpecError
from .base import COLOR_CORRELATION_NORMALIZED, rfft2d_freqs

SPECTRUM_FORMAT = "featviz-spectrum-1"


def mirror_rows(t: torch.Tensor) -> torch.Tensor:
    """``t`` along its last-but-one axis at index -r (mod n) for every r: the mirror of the FFT rows."""
    return torch.roll(torch.flip(t, dims=[-2]), 1, dims=-2)


def real_fft_columns(size: int) -> list[int]:
    """Columns of an rfft2 spectrum whose entries must be Hermitian along the rows: 0 and, for even sizes, Nyquist."""
    w2 = size // 2 + 1
    return [0, w2 - 1] if size % 2 == 0 else [0]


def symmetric_magnitude(magnitude: torch.Tensor, size: int) -> torch.Tensor:
    """Make ``magnitude`` (3, h, w//2+1) even along the rows in the columns that need it, with zero DC."""
    cols = real_fft_columns(size)
    even = (magnitude + mirror_rows(magnitude)) / 2
    keep = torch.ones(magnitude.shape[-1], dtype=torch.bool)
    keep[cols] = False
    out = torch.where(keep, magnitude, even).clone()
    out[..., 0, 0] = 0.0
    return out


def one_over_f(size: int, decay_power: float = 1.0) -> torch.Tensor:
    """1/f**decay_power for every colour channel (the built-in magnitude before ``natural_magnitude``)."""
    freqs = rfft2d_freqs(size, size)
    mag = 1.0 / torch.clamp(freqs, min=1.0 / size) ** decay_power
    return symmetric_magnitude(mag.expand(3, -1, -1).clone(), size)


#: The built-in magnitude, per decorrelated colour channel (luminance, then the two colour
#: axes): amplitude ``NATURAL_AMPLITUDES[c] * (f / 0.1) ** -NATURAL_SLOPES[c]`` at f cycles/pixel.
#: Fitted (least squares on the log of the radially averaged magnitude, 12 log-spaced bands from
#: 2/256 to 0.4 cycles/pixel, so every octave counts the same) to the mean spectrum of seven varied
#: colour photos at 256 px (``benchmarks/varied_photos.py``: scikit-image's and scikit-learn's; ``python
#: -m benchmarks.maco_measure --photos DIR`` prints the fit). The four photos of tests/data, mostly blue
#: and brown, gave far less colour (amplitudes 0.74 and 0.61): MACO renders of every class came out blue
#: and orange and were recognized less often than FFT's (QUALITY.md, "A built-in magnitude of varied photos").
NATURAL_SLOPES: tuple[float, float, float] = (1.28, 1.38, 1.24)
NATURAL_AMPLITUDES: tuple[float, float, float] = (1.0, 1.13, 0.93)
NATURAL_REFERENCE_FREQUENCY = 0.1


def power_law(size: int, slopes: tuple[float, ...], amplitudes: tuple[float, ...],
              reference: float = NATURAL_REFERENCE_FREQUENCY) -> torch.Tensor:
    """A (3, size, size//2+1) magnitude ``amplitudes[c] * (f / reference) ** -slopes[c]``, f floored at 1/size."""
    f = torch.clamp(rfft2d_freqs(size, size), min=1.0 / size) / reference
    mag = torch.stack([a * f ** -s for s, a in zip(slopes, amplitudes)])
    return symmetric_magnitude(mag, size)


def natural_magnitude(size: int) -> torch.Tensor:
    """The built-in magnitude: the power law fitted to photos, per decorrelated colour channel."""
    return power_law(size, NATURAL_SLOPES, NATURAL_AMPLITUDES)


def fit_power_law(magnitude: torch.Tensor, low: float, high: float, bands: int = 12,
                  reference: float = NATURAL_REFERENCE_FREQUENCY) -> tuple[list[float], list[float]]:
    """Per channel of a (3, S, S//2+1) magnitude: the (slope, amplitude at ``reference``) of its power law.

    Least squares on log magnitude against log frequency, over ``bands`` log-spaced bands between
    ``low`` and ``high`` cycles/pixel (each band's mean), so that every octave weighs the same;
    amplitudes are relative to the first channel's.
    """
    size = magnitude.shape[-2]
    freqs = rfft2d_freqs(size, size)
    edges = torch.logspace(math.log10(low), math.log10(high), bands + 1)
    slopes, amplitudes = [], []
    for channel in magnitude.float():
        xs, ys = [], []
        for a, b in zip(edges[:-1], edges[1:]):
            band = (freqs >= a) & (freqs < b)
            if band.any():
                xs.append(math.log(float(freqs[band].mean())))
                ys.append(math.log(float(channel[band].mean())))
        x, y = torch.tensor(xs, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64)
        a_mat = torch.stack([x, torch.ones_like(x)], 1)
        slope, offset = torch.linalg.lstsq(a_mat, y[:, None]).solution[:, 0].tolist()
        slopes.append(-slope)
        amplitudes.append(math.exp(offset + slope * math.log(reference)))
    return slopes, [a / amplitudes[0] for a in amplitudes]


def resample_magnitude(magnitude: torch.Tensor, size: int) -> torch.Tensor:
    """A (3, S, S//2+1) magnitude spectrum resampled to ``size``, matching frequencies in cycles per pixel."""
    src = magnitude.shape[-2]
    if src == size:
        return symmetric_magnitude(magnitude.float(), size)
    shifted = torch.fft.fftshift(magnitude.float(), dim=-2)[None]  # rows from -src/2 to src/2 - 1
    fy = torch.fft.fftfreq(size)[:, None].expand(size, size // 2 + 1)
    fx = torch.fft.rfftfreq(size)[None, :].expand(size, size // 2 + 1)
    row = fy * src + src // 2
    col = fx * src
    grid = torch.stack([col / (magnitude.shape[-1] - 1) * 2 - 1, row / (src - 1) * 2 - 1], dim=-1)[None]
    out = F.grid_sample(shifted, grid.float(), mode="bilinear", padding_mode="border", align_corners=True)[0]
    return symmetric_magnitude(out, size)


def load_magnitude(path: str | None, size: int, *, field: str = "param.spectrum") -> torch.Tensor:
    """The magnitude for an image of ``size``: from a spectrum file, or the built-in natural one when ``path`` is None."""
    if path is None:
        return natural_magnitude(size)
    p = Path(path).expanduser()
    if not p.is_file():
        raise SpecError(field, f"{p}: no such file; make one with 'featviz spectrum DIR -o {p.name}'.")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
        mag = data["magnitude"] if isinstance(data, dict) else data
        if not isinstance(mag, torch.Tensor) or mag.dim() != 3 or mag.shape[0] != 3 or mag.shape[-1] != mag.shape[-2] // 2 + 1:
            raise ValueError(f"expected a (3, S, S//2+1) magnitude tensor, got {getattr(mag, 'shape', type(mag))}")
        if not torch.isfinite(mag).all() or (mag < 0).any():
            raise ValueError("the magnitude has negative or non-finite values")
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad input file
        raise SpecError(field, f"{p}: not a spectrum file ({e}); make one with 'featviz spectrum DIR -o {p.name}'.") from None
    return resample_magnitude(mag, size)


def compute_spectrum(folder: str | Path, size: int = 256) -> dict[str, Any]:
    """The mean magnitude spectrum of the photos under ``folder`` in the decorrelated colour space.

    Each photo is resized (shorter side) and centre-cropped to ``size``; unreadable files are
    counted and skipped. Returns ``{"format", "magnitude" (3, size, size//2+1), "size", "images", "skipped"}``.
    """
    from ..images import list_images, load_image

    inv = torch.linalg.inv(COLOR_CORRELATION_NORMALIZED.double()).float()
    total = torch.zeros(3, size, size // 2 + 1, dtype=torch.float64)
    count = skipped = 0
    for f in list_images(folder):
        try:
            img = load_image(f, size, field="DIR")
        except SpecError:
            skipped += 1
            continue
        decorrelated = torch.einsum("chw,dc->dhw", img - img.mean(), inv)
        total += torch.fft.rfft2(decorrelated, norm="ortho").abs().double()
        count += 1
    if count == 0:
        raise SpecError("DIR", f"{folder}: none of the {skipped} image file(s) could be read.")
    return {"format": SPECTRUM_FORMAT, "magnitude": (total / count).float(), "size": size,
            "images": count, "skipped": skipped}


def save_spectrum(spectrum: dict[str, Any], path: str | Path) -> None:
    """Write a spectrum dict atomically (a ``torch.save`` file of plain tensors and numbers)."""
    import io

    from ..outputs import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(spectrum, buf)
    atomic_write_bytes(Path(path), buf.getvalue())
