"""Objectives: values, algebra, batch targeting, descriptions, range checks, and that each rises."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from featviz_cli import objectives as obj
from featviz_cli.config import ObjectiveSpec, ParamSpec
from featviz_cli.engine import optimize
from featviz_cli.errors import LayerError, SpecError
from featviz_cli.hooks import OUTPUT
from featviz_cli.param import make_param
from featviz_cli.transforms import Jitter, compose

CPU = torch.device("cpu")


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


def test_random_direction_seeded_unit_norm() -> None:
    a, b = obj.random_direction(16, 3), obj.random_direction(16, 3)
    assert torch.equal(a, b) and a.norm().item() == pytest.approx(1.0)
    assert not torch.equal(a, obj.random_direction(16, 4))


def test_algebra_values_and_description() -> None:
    a = _acts()
    o = obj.channel("conv", 0) - 0.5 * obj.channel("conv", 1)
    assert torch.allclose(o(a), obj.channel("conv", 0)(a) - 0.5 * obj.channel("conv", 1)(a))
    assert o.description == "channel conv:0 - 0.5 * channel conv:1"
    assert o.layers == ("conv",)
    assert (-obj.logit(0))(a)[0].item() == -1.0


def test_batch_targeting_and_labels() -> None:
    a = _acts()
    o = obj.channel("conv", 0, batch=0) + obj.channel("conv", 2, batch=1)
    assert torch.allclose(o(a), torch.tensor([1.5, 21.5]))
    assert o.label(0) == "conv:0" and o.label(1) == "conv:2"


def test_check_rejects_out_of_range_units() -> None:
    shapes = {k: v.shape for k, v in _acts().items()}
    with pytest.raises(LayerError, match=r"0\.\.2"):
        obj.channel("conv", 3, field="objective.unit").check(shapes)
    with pytest.raises(LayerError, match="3 values"):
        obj.direction("conv", torch.ones(3)).check({"conv": torch.Size([1, 4, 2, 2])})
    with pytest.raises(LayerError, match="outside"):
        obj.neuron("conv", 0, x=5).check(shapes)


def test_class_names_resolve_with_suggestions() -> None:
    names = ["goldfish", "great white shark", "espresso"]
    assert obj.resolve_class("Espresso", names, "objective.unit") == 2
    with pytest.raises(SpecError, match="goldfish"):
        obj.resolve_class("goldfsh", names, "objective.unit")
    with pytest.raises(SpecError, match="no class names"):
        obj.resolve_class("x", None, "objective.unit")


def test_load_vector_npy_and_pt(tmp_path) -> None:
    np.save(tmp_path / "v.npy", np.array([1.0, 2.0]))
    torch.save(torch.tensor([3.0, 4.0]), tmp_path / "v.pt")
    assert obj.load_vector(str(tmp_path / "v.npy")).tolist() == [1.0, 2.0]
    assert obj.load_vector(str(tmp_path / "v.pt")).tolist() == [3.0, 4.0]
    (tmp_path / "bad.npy").write_bytes(b"junk")
    with pytest.raises(SpecError, match="bad.npy"):
        obj.load_vector(str(tmp_path / "bad.npy"))


def _rises(objective: obj.Objective, tiny_model, batch: int = 1) -> tuple[float, float]:
    model, info = tiny_model
    gen = torch.Generator().manual_seed(0)
    image = make_param(ParamSpec(size=16), batch, gen, CPU)
    res = optimize(model, info, objective, image, compose([Jitter(2)], out_size=32), steps=24, generator=gen,
                   device=CPU)
    return res.curve[0], res.curve[-1]


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
def test_each_objective_rises(term: ObjectiveSpec, tiny_model) -> None:
    _, info = tiny_model
    first, last = _rises(obj.from_spec([term], info.class_names), tiny_model)
    assert last > first + 1e-4


def test_weighted_difference_rises(tiny_model) -> None:
    terms = [ObjectiveSpec(type="channel", layer="act2", unit=1),
             ObjectiveSpec(type="channel", layer="act3", unit=2, weight=-0.5)]
    o = obj.from_spec(terms)
    assert "0.5 * channel act3:2" in o.description
    first, last = _rises(o, tiny_model)
    assert last > first


def test_units_render_one_per_image(tiny_model) -> None:
    o = obj.from_spec([ObjectiveSpec(type="channel", layer="conv2", units=[0, 5])])
    model, info = tiny_model
    gen = torch.Generator().manual_seed(0)
    res = optimize(model, info, o, make_param(ParamSpec(size=16), 2, gen, CPU), compose([], out_size=32),
                   steps=10, generator=gen, device=CPU)
    assert res.labels == ["conv2:0", "conv2:5"]
    assert res.images.shape == (2, 3, 16, 16)
    assert res.values[0] != res.values[1]
