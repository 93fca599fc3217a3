"""objectives/units.py: channel, neuron, deepdream, logit, direction: values, and that each clearly rises."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from featviz_cli import engine
from featviz_cli import objectives as obj
from featviz_cli import transforms as tf
from featviz_cli.config import ObjectiveSpec, ParamSpec
from featviz_cli.errors import LayerError
from featviz_cli.hooks import OUTPUT
from featviz_cli.recipe import Recipe, build_objective, image_param
from featviz_cli.runtime import Execution

from core_helpers import CPU, assert_clear, gen, optimized, untransformed_value


def _acts() -> dict[str, torch.Tensor]:
    conv = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    return {"conv": conv, OUTPUT: torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]])}


def test_channel_is_mean_over_space() -> None:
    v = obj.channel("conv", 1)(_acts())
    assert torch.allclose(v, torch.tensor([5.5, 17.5]))


def test_per_image_units() -> None:
    v = obj.channel("conv", [0, 2])(_acts())
    assert torch.allclose(v, torch.tensor([1.5, 21.5]))


def test_neuron_default_centre_and_explicit_position() -> None:
    a = _acts()
    assert torch.allclose(obj.neuron("conv", 0)(a), a["conv"][:, 0, 1, 1])
    assert torch.allclose(obj.neuron("conv", 0, x=0, y=1)(a), a["conv"][:, 0, 1, 0])


def test_deepdream_is_mean_square() -> None:
    a = _acts()
    assert torch.allclose(obj.deepdream("conv")(a), (a["conv"] ** 2).flatten(1).mean(1))


def test_logit_and_probability() -> None:
    a = _acts()
    assert torch.allclose(obj.logit(2)(a), torch.tensor([3.0, 5.0]))
    p = obj.logit(2, probability=True)(a)
    assert torch.allclose(p, torch.softmax(a[OUTPUT], 1)[:, 2])


def test_direction_dot_and_cossim() -> None:
    a = {"conv": torch.zeros(1, 2, 1, 1)}
    a["conv"][0, :, 0, 0] = torch.tensor([3.0, 4.0])
    v = torch.tensor([1.0, 0.0])
    assert obj.direction("conv", v)(a).item() == pytest.approx(3.0)
    assert obj.direction("conv", v, cossim_pow=1)(a).item() == pytest.approx(3.0 * 0.6, rel=1e-3)


def test_direction_rows_one_per_image() -> None:
    """A (B, C) matrix: image b is scored on row b alone; labels name the rows."""
    a = {"conv": torch.rand(3, 4, 2, 2)}
    rows = torch.randn(3, 4)
    values = obj.direction("conv", rows, name="d.npy", rows=[7, 0, 2])(a)
    expected = torch.stack([(a["conv"][b] * rows[b][:, None, None]).sum(0).mean() for b in range(3)])
    assert torch.allclose(values, expected, atol=1e-6)
    with_cos = obj.direction("conv", rows, cossim_pow=2, rows=[7, 0, 2])(a)
    one = obj.direction("conv", rows[1], cossim_pow=2)({"conv": a["conv"][1:2]})
    assert with_cos[1].item() == pytest.approx(one.item(), rel=1e-5)
    term = obj.direction("conv", rows, name="d.npy", rows=[7, 0, 2])
    assert term.label(0) == "conv:d.npy[7]" and term.description == "direction conv (d.npy rows [7, 0, 2])"


def test_random_direction_seeded_unit_norm() -> None:
    a, b = obj.random_direction(16, 3), obj.random_direction(16, 3)
    assert torch.equal(a, b) and a.norm().item() == pytest.approx(1.0)
    assert not torch.equal(a, obj.random_direction(16, 4))


def test_check_rejects_out_of_range_units() -> None:
    shapes = {k: v.shape for k, v in _acts().items()}
    with pytest.raises(LayerError, match=r"0\.\.2"):
        obj.channel("conv", 3, field="objective.unit").check(shapes)
    with pytest.raises(LayerError, match="3 values"):
        obj.direction("conv", torch.ones(3)).check({"conv": torch.Size([1, 4, 2, 2])})
    with pytest.raises(LayerError, match="outside"):
        obj.neuron("conv", 0, x=5).check(shapes)


# ---------------------------------------------------------------- each objective clearly rises (and falls)


@pytest.mark.parametrize(
    "term",
    [
        ObjectiveSpec(type="channel", layer="act2", unit=3),
        ObjectiveSpec(type="neuron", layer="conv3", unit=1),
        ObjectiveSpec(type="deepdream", layer="conv2"),
        ObjectiveSpec(type="logit", unit="class4"),
        ObjectiveSpec(type="probability", unit=7),
        ObjectiveSpec(type="direction", layer="conv3", random_seed=1),
        ObjectiveSpec(type="direction", layer="conv2", vector=[1.0] * 16, cossim_pow=2),
    ],
    ids=lambda t: t.type,
)
def test_each_objective_rises_and_with_weight_minus_one_falls(term: ObjectiveSpec, tiny_model) -> None:
    model, info = tiny_model
    # One batch of two independent images: image 0 maximizes the term, image 1 has it with weight -1.
    up, down = dataclasses.replace(term, batch=0), dataclasses.replace(term, batch=1, weight=-1.0)
    plain = build_objective([term], info.class_names)
    start, run, noise = optimized(model, info, build_objective([up, down], info.class_names), plain, batch=2)
    final = untransformed_value(model, info, plain, run.images)
    # What optimize returns is the objective of the final image, untransformed.
    assert run.values == pytest.approx([float(final[0]), -float(final[1])], rel=1e-5, abs=1e-7)
    assert_clear(run.values[0] - float(start[0]), float(start[0]), float(noise[0]))
    assert_clear(float(start[1]) + run.values[1], float(start[1]), float(noise[1]))  # it fell


def test_units_render_one_per_image(tiny_model) -> None:
    o = build_objective([ObjectiveSpec(type="channel", layer="conv2", units=[0, 5])])
    model, info = tiny_model
    g = gen()
    recipe = Recipe(objective=o, image=image_param(ParamSpec(size=16), 2, g, CPU),
                    transform=tf.compose([], out_size=32), penalties=None, generator=g, steps=10)
    res = engine.optimize(model, info, recipe, Execution(CPU))
    assert res.labels == ["conv2:0", "conv2:5"]
    assert res.images.shape == (2, 3, 16, 16)
    assert res.values[0] != res.values[1]
