"""Parameterizations: shapes, ranges, determinism, the 1/f scaling, colour decorrelation, blur."""
from __future__ import annotations

import pytest
import torch

from featviz_cli.config import ParamSpec
from featviz_cli.param import (
    COLOR_CORRELATION_NORMALIZED,
    FFTImage,
    PixelImage,
    gaussian_blur,
    make_param,
    rfft2d_freqs,
    to_valid_rgb,
)

CPU = torch.device("cpu")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kind", ["fft", "pixel"])
@pytest.mark.parametrize("output", ["sigmoid", "clamp"])
@pytest.mark.parametrize("decorrelate", [True, False])
def test_image_shape_and_range(kind: str, output: str, decorrelate: bool) -> None:
    spec = ParamSpec(type=kind, size=20, output=output, decorrelate=decorrelate)
    p = make_param(spec, 3, _gen(), CPU)
    img = p()
    assert img.shape == (3, 3, 20, 20)
    assert img.min() >= 0 and img.max() <= 1
    assert all(t.requires_grad for t in p.params)


def test_same_seed_same_init_other_seed_differs() -> None:
    spec = ParamSpec(size=16)
    a, b, c = (make_param(spec, 1, _gen(s), CPU)() for s in (1, 1, 2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_fft_scale_is_one_over_f_with_floor() -> None:
    p = FFTImage(1, 16, sd=0.01, decay_power=1.0, decorrelate=False, output="sigmoid", generator=_gen(), device=CPU)
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
    fft = FFTImage(1, size, sd=0.0 + 1e-8, decay_power=1.0, decorrelate=False, output="sigmoid", generator=_gen(), device=CPU)
    target = torch.randn(1, 3, size, size, generator=_gen(3))
    loss = (fft.raw() * target).sum()
    loss.backward()
    with torch.no_grad():
        step = torch.fft.irfft2(torch.view_as_complex(fft.spectrum.grad) * fft.scale, s=(size, size), norm="ortho")
        power = torch.fft.rfft2(step).abs()
    freqs = rfft2d_freqs(size, size)
    low, high = power[..., freqs < 0.1].mean(), power[..., freqs > 0.4].mean()
    assert low > 5 * high


def test_decorrelation_matrix_normalized() -> None:
    assert COLOR_CORRELATION_NORMALIZED.norm(dim=0).max() == pytest.approx(1.0)
    zero = torch.zeros(1, 3, 2, 2)
    assert torch.allclose(to_valid_rgb(zero, decorrelate=True, output="sigmoid"), torch.full_like(zero, 0.5))
    clamp = to_valid_rgb(zero, decorrelate=True, output="clamp")
    assert torch.allclose(clamp[0, :, 0, 0], torch.tensor([0.48, 0.46, 0.41]))


def test_clamp_passes_gradient_at_the_bounds() -> None:
    t = torch.full((1, 3, 2, 2), 5.0, requires_grad=True)
    out = to_valid_rgb(t, decorrelate=False, output="clamp")
    assert out.max() == 1.0
    out.sum().backward()
    assert (t.grad != 0).all()


@pytest.mark.parametrize("kind", ["fft", "pixel"])
def test_blur_lowers_high_frequency_energy(kind: str) -> None:
    spec = ParamSpec(type=kind, size=32, sd=1.0, decorrelate=False)
    p = make_param(spec, 1, _gen(), CPU)

    def hf() -> float:
        x = p.raw().detach()
        return float((x[..., 1:] - x[..., :-1]).abs().mean())

    before = hf()
    p.blur_(1.0)
    assert hf() < 0.7 * before


def test_gaussian_blur_preserves_constant() -> None:
    x = torch.full((1, 3, 8, 8), 0.3)
    assert torch.allclose(gaussian_blur(x, 1.5), x, atol=1e-6)


def test_pixel_param_holds_raw_values() -> None:
    p = PixelImage(2, 8, sd=0.5, decorrelate=False, output="sigmoid", generator=_gen(), device=CPU)
    assert torch.allclose(p(), torch.sigmoid(p.pixels))
