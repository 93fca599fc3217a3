"""recipe.py: the spec translated once into the objects the engine optimizes with."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from featviz_cli import objectives as obj
from featviz_cli import transforms as tf
from featviz_cli.config import (
    ParamSpec,
    RegularizerSpec,
    TransformSpec,
    parse_spec,
    standard_transforms,
)
from featviz_cli.engine import render
from featviz_cli.errors import LayerError, SpecError
from featviz_cli.hooks import forward_to
from featviz_cli.images import load_image
from featviz_cli.models import ModelInfo
from featviz_cli.params import SharedLowRes
from featviz_cli.params.fft import FFTImage
from featviz_cli.params.pixel import PixelImage
from featviz_cli.recipe import (
    build_objective,
    build_penalties,
    build_recipe,
    check_layers,
    image_param,
    load_vector,
    photo_of,
    resolve_class,
    transform_of,
)
from featviz_cli.transforms import Crops, Jitter, Noise, Pad, Rotate, Scale, final_size

from conftest import DATA
from core_helpers import CPU, gen

PHOTO = str(DATA / "chelsea.jpg")
INFO = ModelInfo(name="test_tiny", input_size=32, class_names=tuple(f"class{i}" for i in range(10)))


def _interp_spec(tiny_spec: dict[str, Any], frames: int = 5, steps: int = 3, **interp: Any) -> dict[str, Any]:
    return {**tiny_spec, "objective": [{"type": "channel", "layer": "conv2", "unit": 3},
                                       {"type": "channel", "layer": "conv2", "unit": 14}],
            "interpolate": {"frames": frames, **interp}, "steps": steps}


# ---------------------------------------------------------------- the whole recipe


def test_recipe_carries_the_settings_of_the_spec(tiny_spec: dict[str, Any]) -> None:
    spec = parse_spec({**tiny_spec, "optimizer": {"type": "sgd", "lr": 0.5}, "thresholds": [2, 3], "relu_redirect": 2,
                       "regularizers": {"blur_every": 2, "blur_sigma": 0.7, "tv": 1.0}})
    r = build_recipe(spec, INFO, CPU)
    assert (r.steps, r.optimizer, r.lr, r.thresholds) == (4, "sgd", 0.5, (2, 3))
    assert (r.blur_every, r.blur_sigma, r.relu_redirect) == (2, 0.7, 2)
    assert isinstance(r.image, FFTImage) and r.objective.description == "channel act2:3"
    assert r.penalties is not None and r.penalties.description == "1 * total_variation(image)"
    assert r.layers == ["act2"]  # the penalty reads the image, not the network
    assert r.techniques == {"param": "fft(decay_power=1.5), decorrelated colour, sigmoid, 16px, sd=0.01"}


def test_the_generator_is_seeded_and_drawn_from_by_the_image(tiny_spec: dict[str, Any]) -> None:
    a, b = (build_recipe(parse_spec({**tiny_spec, "seed": 5}), INFO, CPU) for _ in range(2))
    assert torch.equal(a.image(), b.image()) and torch.equal(a.generator.get_state(), b.generator.get_state())
    fresh = torch.Generator().manual_seed(5)
    assert not torch.equal(a.generator.get_state(), fresh.get_state())  # the image's init drew from it


def test_build_recipe_for_an_interpolation_spec(tiny_spec: dict[str, Any]) -> None:
    r = build_recipe(parse_spec(_interp_spec(tiny_spec, frames=4)), INFO, CPU)
    assert isinstance(r.image, SharedLowRes) and isinstance(r.image.base, FFTImage)
    assert r.image().shape == (4, 3, 16, 16)
    assert r.objective.description == "interpolate(channel conv2:3 -> channel conv2:14, 4 frames)"
    acts = {"conv2": torch.rand(4, 16, 4, 4, generator=gen(1))}
    a, b = obj.channel("conv2", 3)(acts), obj.channel("conv2", 14)(acts)
    t = torch.tensor([0, 1 / 3, 2 / 3, 1])
    assert torch.allclose(r.objective(acts), (1 - t) * a + t * b)
    assert r.techniques["interpolation_weights_b"] == [0.0, 0.333333, 0.666667, 1.0]
    assert r.techniques["param"].endswith(" + low-resolution parts shared by the frames")
    unshared = build_recipe(parse_spec(_interp_spec(tiny_spec, frames=4, shared=False)), INFO, CPU)
    assert isinstance(unshared.image, FFTImage) and unshared.objective.description == r.objective.description
    assert "low-resolution" not in unshared.techniques["param"]


def test_objective_blends_per_frame(tiny_spec: dict[str, Any]) -> None:
    spec = parse_spec(_interp_spec(tiny_spec, frames=3))
    o = build_objective(spec.objective, frames=3)
    acts = {"conv2": torch.rand(3, 16, 4, 4)}
    a, b = obj.channel("conv2", 3)(acts), obj.channel("conv2", 14)(acts)
    assert torch.allclose(o(acts), torch.stack([a[0], (a[1] + b[1]) / 2, b[2]]))
    assert [o.label(i) for i in range(3)] == ["t=0.00", "t=0.50", "t=1.00"]
    assert o.description == "interpolate(channel conv2:3 -> channel conv2:14, 3 frames)"


@pytest.mark.parametrize(
    ("change", "field", "fix"),
    [
        (lambda d: d["objective"].pop(), "objective", "needs the two end points"),
        (lambda d: d["objective"][0].update(unit=None, units=[1, 2, 3, 4, 5]), "objective[0].units", "give 'unit'"),
        (lambda d: d.update(param={"size": 16, "batch": 3}), "param.batch", "interpolate.frames is 5"),
        (lambda d: d.update(param={"size": 16, "type": "cppn"}), "interpolate.shared", "set it false"),
        (lambda d: d["interpolate"].update(frames=1), "interpolate.frames", "must be >= 2"),
    ],
)
def test_bad_interpolation_specs_name_the_field(tiny_spec: dict[str, Any], change, field: str, fix: str) -> None:
    data = _interp_spec(tiny_spec)
    change(data)
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    assert info.value.field == field and fix in str(info.value)


def test_check_layers_names_the_field(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, _ = tiny_model
    check_layers(parse_spec(tiny_spec), model)
    two = [tiny_spec["objective"], {"type": "channel", "layer": "act9", "unit": 0}]
    with pytest.raises(LayerError, match=r"^objective\[1\].layer: no layer 'act9'"):
        check_layers(parse_spec({**tiny_spec, "objective": two}), model)


# ---------------------------------------------------------------- the objective


def test_diversity_from_the_spec_describes_itself(tiny_spec: dict[str, Any]) -> None:
    tiny_spec["objective"] = [tiny_spec["objective"], {"type": "diversity", "layer": "act1", "weight": 2.0}]
    tiny_spec["param"]["batch"] = 4
    spec = parse_spec(tiny_spec)
    o = build_objective(spec.objective)
    assert o.description == "channel act2:3 + 2 * diversity act1"
    assert o.layers == ("act2", "act1")
    assert [o.label(i) for i in range(4)] == ["act2:3"] * 4


def test_class_names_resolve_with_suggestions() -> None:
    names = ["goldfish", "great white shark", "espresso"]
    assert resolve_class("Espresso", names, "objective.unit") == 2
    with pytest.raises(SpecError, match="goldfish"):
        resolve_class("goldfsh", names, "objective.unit")
    with pytest.raises(SpecError, match="no class names"):
        resolve_class("x", None, "objective.unit")


def test_load_vector_npy_and_pt(tmp_path) -> None:
    np.save(tmp_path / "v.npy", np.array([1.0, 2.0]))
    torch.save(torch.tensor([3.0, 4.0]), tmp_path / "v.pt")
    assert load_vector(str(tmp_path / "v.npy")).tolist() == [1.0, 2.0]
    assert load_vector(str(tmp_path / "v.pt")).tolist() == [3.0, 4.0]
    (tmp_path / "bad.npy").write_bytes(b"junk")
    with pytest.raises(SpecError, match="bad.npy"):
        load_vector(str(tmp_path / "bad.npy"))


# ---------------------------------------------------------------- the image


@pytest.mark.parametrize("kind", ["fft", "pixel"])
@pytest.mark.parametrize("output", ["sigmoid", "clamp"])
@pytest.mark.parametrize("decorrelate", [True, False])
@pytest.mark.parametrize("size", [32, 33])
def test_first_image_is_the_photo(kind: str, output: str, decorrelate: bool, size: int) -> None:
    spec = ParamSpec(type=kind, size=size, output=output, decorrelate=decorrelate, init_image=PHOTO)
    image = image_param(spec, 2, gen(), CPU, photo_of(spec))
    photo = load_image(PHOTO, size)
    got = image().detach()
    assert got.shape == (2, 3, size, size)
    # sigmoid: pure black/white come back as 0.001/0.999 (a logit of 0 or 1 is infinite)
    assert (got - photo).abs().max() < (1.01e-3 if output == "sigmoid" else 1e-5)
    assert all(t.requires_grad for t in image.params)


def test_photo_of_is_none_without_init_image_and_image_param_starts_random() -> None:
    spec = ParamSpec(type="pixel", size=8)
    assert photo_of(spec) is None
    image = image_param(spec, 1, gen(), CPU)
    assert isinstance(image, PixelImage) and torch.equal(image.pixels, torch.randn(1, 3, 8, 8, generator=gen()) * 0.01)


@pytest.mark.parametrize(
    ("param", "regularizers", "field", "fix"),
    [
        ({"type": "cppn", "init_image": PHOTO}, {}, "param.init_image", "fft or pixel"),
        ({"type": "maco", "init_image": PHOTO}, {}, "param.init_image", "fft or pixel"),
        ({"type": "fft"}, {"init_l2": 1.0}, "regularizers.init_l2", "needs param.init_image"),
    ],
)
def test_bad_photo_specs_name_the_field(tiny_spec: dict[str, Any], param: dict, regularizers: dict, field: str,
                                        fix: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({**tiny_spec, "param": param, "regularizers": regularizers})
    assert info.value.field == field and fix in str(info.value)


# ---------------------------------------------------------------- transforms and penalties


def test_standard_set_matches_lucid_sizes() -> None:
    ts = [transform_of(t) for t in standard_transforms()]
    assert ts[0] == Pad(12, "constant", 0.5)
    assert isinstance(ts[1], Jitter) and ts[1].pixels == 8
    assert isinstance(ts[2], Scale) and min(ts[2].factors) == 0.9 and max(ts[2].factors) == 1.1
    assert isinstance(ts[3], Rotate) and ts[3].degrees.count(0.0) == 6
    assert final_size(ts, 128) == 128 + 24 - 8 - 4


def test_maco_transforms_and_their_defaults() -> None:
    assert transform_of(TransformSpec(type="crops")) == Crops(32, 0.5, 0.05)
    assert transform_of(TransformSpec(type="crops", count=4, box=[0.4, 0.1])) == Crops(4, 0.4, 0.1)
    assert transform_of(TransformSpec(type="noise")) == Noise(0.04)
    assert transform_of(TransformSpec(type="noise", std=0.0)) == Noise(0.0)


def test_penalties_are_none_without_weights_and_sum_the_weighted_terms() -> None:
    assert build_penalties(RegularizerSpec()) is None
    assert build_penalties(RegularizerSpec(init_l2=2.0)) is None  # no photo, nothing to stay near
    p = build_penalties(RegularizerSpec(tv=1.0, l1=2.0, l2=3.0))
    assert p is not None and p.description == "1 * total_variation(image) + 2 * L1(image - 0.5) + 3 * L2(image - 0.5)"
    x = torch.rand(2, 3, 6, 6, generator=gen(3))
    acts = {obj.IMAGE: x}
    want = obj.total_variation()(acts) + 2 * obj.lp_norm(1)(acts) + 3 * obj.lp_norm(2)(acts)
    assert torch.allclose(p(acts), want)
    photo = torch.zeros(1, 3, 6, 6)
    held = build_penalties(RegularizerSpec(init_l2=2.0), photo)
    assert held is not None and torch.allclose(held(acts), 2 * x.pow(2).flatten(1).mean(1))


# ---------------------------------------------------------------- feature accentuation and the rest of the issue-12 pieces

COFFEE = str(DATA / "coffee.jpg")


def _accentuation(tiny_spec: dict[str, Any], **regularizers: Any) -> dict[str, Any]:
    return {**tiny_spec, "objective": {"type": "channel", "layer": "act3", "unit": 5},
            "param": {"type": "fft", "size": 32, "init_image": COFFEE}, "steps": 40, "regularizers": regularizers}


def test_feature_penalty_is_built_from_the_spec_and_its_layer_checked(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, _ = tiny_model
    spec = parse_spec(_accentuation(tiny_spec, features={"layer": "act1", "weight": 10}))
    penalties = build_penalties(spec.regularizers, photo_of(spec.param))
    assert penalties is not None and "act1" in penalties.layers and penalties.description.startswith("10 * L2(act1")
    assert build_penalties(parse_spec(_accentuation(tiny_spec, features={"layer": "act1", "weight": 0})).regularizers,
                           photo_of(spec.param)) is None
    check_layers(spec, model)
    bad = parse_spec(_accentuation(tiny_spec, features={"layer": "act9"}))
    with pytest.raises(LayerError, match=r"regularizers\.features\.layer"):
        check_layers(bad, model)


def test_accentuation_stays_closer_to_the_photo_than_a_plain_render(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    photo = photo_of(parse_spec(_accentuation(tiny_spec)).param)
    assert photo is not None
    plain = render(parse_spec(_accentuation(tiny_spec)), model=model, info=info)
    accent = render(parse_spec(_accentuation(tiny_spec, features={"layer": "act1", "weight": 30})), model=model,
                    info=info)

    def distances(images: torch.Tensor) -> tuple[float, float]:
        with torch.no_grad():
            a, p = (forward_to(model, (x - 0.5) / 0.25, ["act1"])["act1"] for x in (images, photo))
        return float((a - p).pow(2).sum() / p.pow(2).sum()), float((images - photo).pow(2).mean())

    (f_plain, px_plain), (f_accent, px_accent) = distances(plain.images), distances(accent.images)
    assert f_accent < 0.5 * f_plain and px_accent < px_plain
    assert accent.values[0] > 0.5 * plain.values[0]  # the unit is still accentuated


def test_crops_centres_reach_the_transform() -> None:
    spec = parse_spec({"objective": {"type": "channel", "layer": "act2", "unit": 0},
                       "transforms": [{"type": "crops", "count": 3, "box": [0.3, 0.3], "centres": "uniform"}]})
    crops = transform_of(spec.transforms[0])
    assert crops == tf.Crops(3, 0.3, 0.3, centres="uniform")
    assert transform_of(parse_spec({"objective": {"type": "channel", "layer": "a", "unit": 0},
                                    "transforms": [{"type": "crops"}]}).transforms[0]).centres == "normal"


def test_alpha_reaches_the_recipe(tiny_spec: dict[str, Any], tiny_model) -> None:
    _, info = tiny_model
    assert build_recipe(parse_spec({**tiny_spec, "output": {"alpha": True}}), info, CPU).alpha
    assert not build_recipe(parse_spec(tiny_spec), info, CPU).alpha
