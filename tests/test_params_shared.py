"""params/shared.py: low-resolution parts shared by interpolation frames; their blur."""
from __future__ import annotations

import pytest
import torch

from featviz_cli.params.fft import FFTImage
from featviz_cli.params.pixel import PixelImage
from featviz_cli.params.shared import SharedLowRes, lowres

from core_helpers import CPU, energy_by_frequency, gen, reference_blur


def test_lowres_ramps_linearly_across_the_batch() -> None:
    ends = torch.stack([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)])
    up = lowres(ends, 5, 8)
    assert up.shape == (5, 3, 8, 8)
    assert [float(v) for v in up.mean((1, 2, 3))] == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    assert torch.equal(lowres(torch.ones(1, 3, 2, 2), 4, 8), torch.ones(4, 3, 8, 8))


def _shared(size: int = 16, batch: int = 4, sd: float = 0.01) -> SharedLowRes:
    g = gen()
    base = FFTImage(batch, size, sd=sd, decay_power=1.0, decorrelate=True, output="sigmoid", generator=g, device=CPU)
    return SharedLowRes(base, batch, size, sd=sd, generator=g, device=CPU)


def test_shared_parameters_are_shared() -> None:
    image = _shared()
    assert len(image.params) == 1 + 5 and image().shape == (4, 3, 16, 16)
    # A change of one shared tensor changes every frame, a change of the base only its frame.
    before = image().detach()
    with torch.no_grad():
        image.shared[0].add_(1.0)
    assert ((image() - before).abs().flatten(1).amax(1) > 0.1).all()
    before = image().detach()
    with torch.no_grad():
        image.base.spectrum[1].add_(1.0)
    moved = (image() - before).abs().flatten(1).amax(1)
    assert moved[1] > 0.1 and moved[[0, 2, 3]].eq(0).all()


def test_blur_blurs_the_base_and_the_shared_parts_big_enough() -> None:
    size, sigma = 32, 0.5
    g = gen(1)
    base = PixelImage(3, size, sd=1.0, decorrelate=False, output="sigmoid", generator=g, device=CPU)
    image = SharedLowRes(base, 3, size, sd=1.0, generator=g, device=CPU)
    base_before = base.raw().detach().clone()
    shared_before = [t.detach().clone() for t in image.shared]
    raw_before = image.raw().detach().clone()
    image.blur_(sigma)
    assert torch.allclose(base.raw().detach(), reference_blur(base_before, sigma), atol=1e-6)
    blurred = 0
    for t, old in zip(image.shared, shared_before):
        if min(old.shape[-2:]) > 3 * sigma + 1:  # 16, 8, 8 and 4 px: blurred (a kernel needs room to reflect)
            assert torch.allclose(t.detach(), reference_blur(old, sigma), atol=1e-6)
            blurred += 1
        else:  # the 2 px part: left alone
            assert torch.equal(t.detach(), old)
    assert blurred == 4
    # What a blur must do: high frequencies of the image fall; the low ones of the full-size part stay.
    # (A shared part is blurred in its own pixels: sigma 0.5 at 1/8 of the size is 4 image pixels.)
    assert energy_by_frequency(image.raw(), 0.3, 1.0) < 0.5 * energy_by_frequency(raw_before, 0.3, 1.0)
    low_before, low_after = energy_by_frequency(base_before, 0.0, 0.06), energy_by_frequency(base.raw(), 0.0, 0.06)
    assert low_after == pytest.approx(low_before, rel=0.1)
