"""params/fft.py: the 1/f-scaled Fourier basis, its blur, the exact inverse for a photo."""
from __future__ import annotations

import math

import pytest
import torch

from featviz_cli.params.base import rfft2d_freqs
from featviz_cli.params.fft import FFTImage

from core_helpers import CPU, assert_blur_lowers_high_frequencies, energy_by_frequency, gen


def _fft(size: int = 32, sd: float = 1.0, batch: int = 1) -> FFTImage:
    return FFTImage(batch, size, sd=sd, decay_power=1.0, decorrelate=False, output="sigmoid", generator=gen(),
                    device=CPU)


def test_fft_scale_is_one_over_f_with_floor() -> None:
    p = FFTImage(1, 16, sd=0.01, decay_power=1.0, decorrelate=False, output="sigmoid", generator=gen(), device=CPU)
    f = rfft2d_freqs(16, 16)
    quarter = 4.0  # Lucid's image / 4, folded into the scale
    assert p.scale[0, 0] * quarter == pytest.approx(16.0)  # DC: 1 / max(0, 1/16)
    assert p.scale[0, 1] * quarter == pytest.approx(1 / f[0, 1])
    assert p.scale[8, 8] * quarter == pytest.approx(1 / f[8, 8])
    # raw() is Lucid's irfft2(spectrum / f) / 4
    lucid = torch.fft.irfft2(torch.view_as_complex(p.spectrum) / f.clamp(min=1 / 16), s=(16, 16), norm="ortho") / 4
    assert torch.allclose(p.raw(), lucid, atol=1e-7)


def test_fft_gradient_steps_favour_low_frequencies() -> None:
    """A gradient step in the 1/f-scaled basis changes low frequencies more than pixel steps do."""
    size = 32
    fft = FFTImage(1, size, sd=0.0 + 1e-8, decay_power=1.0, decorrelate=False, output="sigmoid", generator=gen(),
                   device=CPU)
    target = torch.randn(1, 3, size, size, generator=gen(3))
    loss = (fft.raw() * target).sum()
    loss.backward()
    with torch.no_grad():
        step = torch.fft.irfft2(torch.view_as_complex(fft.spectrum.grad) * fft.scale, s=(size, size), norm="ortho")
        power = torch.fft.rfft2(step).abs()
    freqs = rfft2d_freqs(size, size)
    low, high = power[..., freqs < 0.1].mean(), power[..., freqs > 0.4].mean()
    assert low > 5 * high


def test_blur_lowers_high_frequency_energy() -> None:
    assert_blur_lowers_high_frequencies(_fft())


def test_blur_multiplies_each_frequency_by_the_gaussian_gain() -> None:
    p = _fft(size=24)
    before = p.raw().detach().clone()
    p.blur_(1.0)
    after = p.raw().detach()
    # Independently, per frequency of the full 2-D DFT: a Gaussian's transform exp(-2 pi^2 sigma^2 f^2).
    f2 = torch.fft.fftfreq(24)[:, None] ** 2 + torch.fft.fftfreq(24)[None, :] ** 2
    want = torch.fft.ifft2(torch.fft.fft2(before.double()) * torch.exp(-2 * math.pi**2 * f2)).real
    assert torch.allclose(after.double(), want, atol=1e-6)
    assert energy_by_frequency(after, 0.3, 1.0) < 0.05 * energy_by_frequency(before, 0.3, 1.0)
    assert energy_by_frequency(after, 0.0, 0.05) > 0.9 * energy_by_frequency(before, 0.0, 0.05)


def test_load_raw_is_the_exact_inverse_of_raw() -> None:
    p = _fft(size=17, batch=2)
    raw = torch.rand(1, 3, 17, 17, generator=gen(5))
    p.load_raw_(raw)
    assert torch.allclose(p.raw().detach(), raw.expand(2, -1, -1, -1), atol=1e-6)
