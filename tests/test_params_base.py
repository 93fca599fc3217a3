"""params/base.py: the ImageParam contract (shapes, range, seeds), colour, the inverse mapping, blur."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from featviz_cli import params
from featviz_cli.config import ParamSpec
from featviz_cli.params.base import (COLOR_CORRELATION_NORMALIZED, from_valid_rgb, gaussian_blur, rfft2d_freqs,
                                     to_valid_rgb)

from core_helpers import CPU, gen, reference_blur


def _build(spec: ParamSpec, batch: int, seed: int = 0) -> params.ImageParam:
    return params.build_param(spec.type, dataclasses.asdict(spec), batch, gen(seed), CPU)


@pytest.mark.parametrize("kind", ["fft", "pixel"])
@pytest.mark.parametrize("output", ["sigmoid", "clamp"])
@pytest.mark.parametrize("decorrelate", [True, False])
def test_image_shape_and_range(kind: str, output: str, decorrelate: bool) -> None:
    p = _build(ParamSpec(type=kind, size=20, output=output, decorrelate=decorrelate), 3)
    img = p()
    assert img.shape == (3, 3, 20, 20)
    assert img.min() >= 0 and img.max() <= 1
    assert all(t.requires_grad for t in p.params)


def test_same_seed_same_init_other_seed_differs() -> None:
    spec = ParamSpec(size=16)
    a, b, c = (_build(spec, 1, s)() for s in (1, 1, 2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


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


def test_from_valid_rgb_inverts_to_valid_rgb() -> None:
    raw = torch.randn(2, 3, 5, 5, generator=gen(1))
    for decorrelate in (True, False):
        img = to_valid_rgb(raw, decorrelate=decorrelate, output="sigmoid")
        assert torch.allclose(from_valid_rgb(img, decorrelate=decorrelate, output="sigmoid"), raw, atol=1e-4)


def test_rfft2d_freqs_are_the_distances_to_dc() -> None:
    f = rfft2d_freqs(8, 8)
    assert f.shape == (8, 5)
    assert float(f[0, 0]) == 0 and float(f[0, 4]) == pytest.approx(0.5) and float(f[4, 4]) == pytest.approx(0.5**0.5)
    assert float(f[7, 1]) == pytest.approx((1 / 64 + 1 / 64) ** 0.5)  # row 7 is frequency -1/8


def test_gaussian_blur_preserves_constant() -> None:
    x = torch.full((1, 3, 8, 8), 0.3)
    assert torch.allclose(gaussian_blur(x, 1.5), x, atol=1e-6)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.7])
def test_gaussian_blur_matches_a_plain_2d_convolution(sigma: float) -> None:
    x = torch.rand(2, 3, 12, 15, generator=gen(4))
    assert torch.allclose(gaussian_blur(x, sigma), reference_blur(x, sigma), atol=1e-6)
