"""params/cppn.py: Lucid's network of the pixel coordinates."""
from __future__ import annotations

import pytest
import torch

from featviz_cli.config import ParamSpec
from featviz_cli.params.cppn import CPPNImage, composite_activation, coordinates
from featviz_cli.recipe import image_param

from core_helpers import CPU, gen


def test_coordinates_have_unit_variance() -> None:
    c = coordinates(64)
    assert c.shape == (2, 64 * 64)
    assert abs(float(c[0].std(unbiased=False)) - 1.0) < 0.05
    assert abs(float(c.min()) + 3**0.5) < 1e-6 and abs(float(c.max()) - 3**0.5) < 1e-6


def test_composite_activation_doubles_channels() -> None:
    x = torch.randn(2, 4, 10)
    y = composite_activation(x)
    assert y.shape == (2, 8, 10)
    assert torch.allclose(y[:, :4], torch.atan(x) / 0.67)


def test_starts_grey_with_one_network_per_image() -> None:
    image = image_param(ParamSpec(type="cppn", size=12, cppn_layers=3, cppn_width=5), 2, gen(), CPU)
    assert isinstance(image, CPPNImage)
    assert torch.equal(image(), torch.full((2, 3, 12, 12), 0.5))  # zero output layer (Lucid)
    assert len(image.params) == 2 * 4 and image.weights[0].shape == (2, 5, 2) and image.weights[1].shape == (2, 5, 10)


def test_cannot_be_blurred_and_says_how_to_fix() -> None:
    image = CPPNImage(1, 8, layers=1, width=2, generator=gen(), device=CPU)
    with pytest.raises(NotImplementedError, match="blur_every: 0"):
        image.blur_(1.0)
