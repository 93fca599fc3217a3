"""objectives/base.py: the Objective algebra (values, descriptions, layers, labels), batch targeting."""
from __future__ import annotations

import pytest
import torch

from featviz_cli import objectives as obj
from featviz_cli.config import ObjectiveSpec
from featviz_cli.hooks import OUTPUT
from featviz_cli.objectives.base import batch_mask, units_on
from featviz_cli.recipe import build_objective

from core_helpers import CPU, assert_clear, optimized, untransformed_value


def _acts() -> dict[str, torch.Tensor]:
    conv = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    return {"conv": conv, OUTPUT: torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])}


def test_algebra_values_and_description() -> None:
    a = _acts()
    o = obj.channel("conv", 0) - 0.5 * obj.channel("conv", 1)
    assert torch.allclose(o(a), obj.channel("conv", 0)(a) - 0.5 * obj.channel("conv", 1)(a))
    assert o.description == "channel conv:0 - 0.5 * channel conv:1"
    assert o.layers == ("conv",)
    assert (-obj.logit(0))(a)[0].item() == -1.0


def test_adding_a_number_shifts_every_value() -> None:
    a = _acts()
    o = obj.channel("conv", 0) + 2
    assert torch.allclose(o(a), torch.tensor([3.5, 15.5])) and o.description == "channel conv:0 + 2"
    assert (obj.channel("conv", 0) + 0).description == "channel conv:0"


def test_batch_targeting_and_labels() -> None:
    a = _acts()
    o = obj.channel("conv", 0, batch=0) + obj.channel("conv", 2, batch=1)
    assert torch.allclose(o(a), torch.tensor([1.5, 21.5]))
    assert o.label(0) == "conv:0" and o.label(1) == "conv:2"


def test_batch_mask_and_units_on() -> None:
    assert torch.equal(batch_mask(torch.tensor([1.0, 2.0, 3.0]), 1), torch.tensor([0.0, 2.0, 0.0]))
    assert torch.equal(units_on([3, 1], 2, CPU), torch.tensor([3, 1])) and torch.equal(units_on(4, 2, CPU),
                                                                                    torch.tensor([4, 4]))


def test_weighted_difference_rises(tiny_model) -> None:
    model, info = tiny_model
    terms = [ObjectiveSpec(type="channel", layer="act2", unit=1),
             ObjectiveSpec(type="channel", layer="act3", unit=2, weight=-0.5)]
    o = build_objective(terms)
    assert "0.5 * channel act3:2" in o.description
    start, run, noise = optimized(model, info, o, o, batch=1)
    # the final image's untransformed value, to float rounding (a recomputation in another batch shape can
    # differ in the last bits on CPUs whose kernels change with it)
    assert run.values == pytest.approx([float(untransformed_value(model, info, o, run.images)[0])], rel=1e-5, abs=1e-7)
    assert_clear(run.values[0] - float(start[0]), float(start[0]), float(noise[0]))
