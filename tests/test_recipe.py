"""The recipe: the feature-accentuation penalty and MACO's crops, built from the spec."""
from __future__ import annotations

from typing import Any

import pytest
import torch

from featviz_cli import transforms as tf
from featviz_cli.config import parse_spec
from featviz_cli.engine import render
from featviz_cli.errors import LayerError
from featviz_cli.hooks import forward_to
from featviz_cli.recipe import build_penalties, build_recipe, check_layers, photo_of, transform_of

from conftest import DATA

CPU = torch.device("cpu")
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
