"""Steepest-descent choices: adam, sgd, sign (L-infinity) and nadam, from the spec."""
from __future__ import annotations

from typing import Any

import pytest
import torch

from featviz_cli.config import parse_spec
from featviz_cli.engine import render
from featviz_cli.errors import SpecError
from featviz_cli.optimizers import OPTIMIZERS, SignDescent, make_optimizer


def test_sign_step_moves_every_parameter_by_lr() -> None:
    p = torch.tensor([1.0, 1.0, 1.0], requires_grad=True)
    p.grad = torch.tensor([3.0, -1e-6, 0.0])
    SignDescent([p], lr=0.1).step()
    assert p.tolist() == pytest.approx([0.9, 1.1, 1.0])


def test_sgd_step_is_lr_times_gradient() -> None:
    p = torch.tensor([1.0], requires_grad=True)
    p.grad = torch.tensor([2.0])
    make_optimizer("sgd", [p], 0.5).step()
    assert p.item() == pytest.approx(0.0)


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_every_optimizer_renders_and_is_recorded(tiny_spec: dict[str, Any], tiny_model, kind: str) -> None:
    model, info = tiny_model
    lr = {"adam": 0.05, "sgd": 5.0, "sign": 0.01, "nadam": 0.05}[kind]
    result = render(parse_spec({**tiny_spec, "optimizer": {"type": kind, "lr": lr}, "steps": 8}), model=model, info=info)
    assert result.techniques["optimizer"] == kind
    assert result.curve[-1] > result.curve[0]


def test_unknown_optimizer_is_refused(tiny_spec: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match="optimizer.type: 'adamw' is not one of adam, sgd, sign, nadam"):
        parse_spec({**tiny_spec, "optimizer": {"type": "adamw"}})
    with pytest.raises(ValueError):
        make_optimizer("adamw", [], 0.1)


def test_sign_descent_on_pixels_makes_more_high_frequencies_than_adam_on_fft(tiny_spec: dict[str, Any],
                                                                            tiny_model) -> None:
    model, info = tiny_model

    def high_frequency_share(param: dict, optimizer: dict) -> float:
        data = {**tiny_spec, "param": {"size": 32, **param}, "optimizer": optimizer, "steps": 30,
                "objective": {"type": "channel", "layer": "conv2", "unit": 3}}
        img = render(parse_spec(data), model=model, info=info).images
        power = torch.fft.rfft2(img - img.mean((2, 3), keepdim=True)).abs() ** 2
        f = torch.sqrt(torch.fft.fftfreq(32)[:, None] ** 2 + torch.fft.rfftfreq(32)[None, :] ** 2)
        return float(power[..., f > 0.25].sum() / power.sum())

    sign_pixel = high_frequency_share({"type": "pixel", "decorrelate": False}, {"type": "sign", "lr": 0.01})
    adam_fft = high_frequency_share({"type": "fft"}, {"type": "adam", "lr": 0.05})
    assert sign_pixel > 2 * adam_fft
