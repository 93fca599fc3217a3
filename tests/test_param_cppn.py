"""CPPN parameterization: Lucid's network of the pixel coordinates."""
from __future__ import annotations

from typing import Any

import torch

from featviz_cli.config import ParamSpec, parse_spec
from featviz_cli.engine import render
from featviz_cli.param import make_param
from featviz_cli.param_cppn import CPPNImage, composite_activation, coordinates

CPU = torch.device("cpu")


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
    image = make_param(ParamSpec(type="cppn", size=12, cppn_layers=3, cppn_width=5), 2,
                       torch.Generator().manual_seed(0), CPU)
    assert isinstance(image, CPPNImage)
    assert torch.equal(image(), torch.full((2, 3, 12, 12), 0.5))  # zero output layer (Lucid)
    assert len(image.params) == 2 * 4 and image.weights[0].shape == (2, 5, 2) and image.weights[1].shape == (2, 5, 10)


def test_cppn_render_raises_the_objective_smoothly(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    data = {**tiny_spec, "objective": {"type": "channel", "layer": "conv2", "units": [3, 14]}, "steps": 40,
            "param": {"type": "cppn", "size": 32}, "optimizer": {"lr": 0.005}}
    result = render(parse_spec(data), model=model, info=info)
    assert sum(result.curve[-5:]) > sum(result.curve[:5]) + 0.2
    img = result.images
    assert not torch.allclose(img[0], img[1], atol=0.02)  # two networks, two images
    assert result.techniques["param"].startswith("cppn(8 layers x 24)")
