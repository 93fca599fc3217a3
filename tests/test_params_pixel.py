"""params/pixel.py: raw pixels, their blur, starting from raw values."""
from __future__ import annotations

import torch

from featviz_cli.params.pixel import PixelImage, describe_pixel_like

from core_helpers import CPU, assert_blur_lowers_high_frequencies, gen, reference_blur


def _pixel(batch: int = 1, size: int = 32, sd: float = 1.0) -> PixelImage:
    return PixelImage(batch, size, sd=sd, decorrelate=False, output="sigmoid", generator=gen(), device=CPU)


def test_pixel_param_holds_raw_values() -> None:
    p = PixelImage(2, 8, sd=0.5, decorrelate=False, output="sigmoid", generator=gen(), device=CPU)
    assert torch.allclose(p(), torch.sigmoid(p.pixels))


def test_blur_lowers_high_frequency_energy() -> None:
    assert_blur_lowers_high_frequencies(_pixel())


def test_blur_is_a_gaussian_blur_of_the_pixels() -> None:
    p = _pixel(batch=2, size=16)
    before = p.raw().detach().clone()
    p.blur_(0.8)
    assert torch.allclose(p.raw().detach(), reference_blur(before, 0.8), atol=1e-6)


def test_load_raw_sets_every_image_of_the_batch() -> None:
    p = _pixel(batch=3, size=8)
    raw = torch.randn(1, 3, 8, 8, generator=gen(2))
    p.load_raw_(raw)
    assert torch.equal(p.raw().detach(), raw.expand(3, -1, -1, -1))


def test_description_names_basis_colour_output_size_and_photo() -> None:
    o = {"decorrelate": True, "output": "sigmoid", "size": 64, "sd": 0.01, "init_image": "cat.jpg"}
    assert describe_pixel_like("pixel", o) == "pixel, decorrelated colour, sigmoid, 64px, sd=0.01, from cat.jpg"
    plain = {**o, "decorrelate": False, "init_image": None}
    assert describe_pixel_like("pixel", plain) == "pixel, rgb, sigmoid, 64px, sd=0.01"
