"""featviz_cli/faithfulness/measure.py: the similarities against a plain numpy reference, the score's two
ends, a unit's means and flag, and which earlier layers are compared."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from featviz_cli.faithfulness.measure import (
    THRESHOLD,
    image_faithfulness,
    path_layers,
    similarities,
    standardizer,
    unit_faithfulness,
)


def _reference(render: np.ndarray, top: np.ndarray, random: np.ndarray) -> dict[str, float]:
    """The similarities written out with loops: centre by the random photos' mean, scale each channel by the
    photos' std (floored at the median channel's), mean cosine with the top examples."""
    both = np.concatenate([top, random])
    std = both.std(0)
    std = np.maximum(std, np.median(std))
    centre = random.mean(0)

    def z(v: np.ndarray) -> np.ndarray:
        return (v - centre) / std

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    r = np.mean([cos(z(render), z(t)) for t in top])
    pairs = [cos(z(a), z(b)) for i, a in enumerate(top) for j, b in enumerate(top) if i != j]
    rnd = np.mean([cos(z(x), z(t)) for x in random for t in top])
    return {"render": r, "top": float(np.mean(pairs)), "random": rnd, "score": (r - rnd) / (np.mean(pairs) - rnd)}


def test_similarities_are_the_reference_ones() -> None:
    g = np.random.default_rng(0)
    top = g.normal(1.0, 0.3, (5, 8)) + np.array([3.0, 0, 0, 0, 0, 0, 0, 0])
    random = g.normal(1.0, 0.5, (9, 8))
    render = g.normal(1.0, 0.3, 8) + np.array([2.0, 0, 0, 0, 0, 0, 0, 0])
    got = similarities(torch.from_numpy(render), torch.from_numpy(top), torch.from_numpy(random),
                       *standardizer(torch.from_numpy(top), torch.from_numpy(random)))
    ref = _reference(render, top, random)
    for key in ref:
        assert got[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), key


def test_a_top_example_as_render_scores_about_one_and_a_random_photo_about_zero() -> None:
    g = torch.Generator().manual_seed(1)
    direction = torch.zeros(16, dtype=torch.float64)
    direction[:3] = 4.0
    top = torch.randn(6, 16, generator=g, dtype=torch.float64) + direction
    random = torch.randn(40, 16, generator=g, dtype=torch.float64)
    like_top = torch.randn(16, generator=g, dtype=torch.float64) + direction
    like_random = torch.randn(16, generator=g, dtype=torch.float64)
    centre, scale = standardizer(top, random)
    high = similarities(like_top, top, random, centre, scale)["score"]
    low = similarities(like_random, top, random, centre, scale)["score"]
    assert 0.7 < high < 1.3 and -0.3 < low < 0.3


def test_a_unit_averages_its_images_and_is_flagged_below_the_threshold() -> None:
    top = torch.tensor([[1.0, 0.0], [0.9, 0.1]], dtype=torch.float64)
    random = torch.tensor([[0.0, 1.0], [0.2, 0.8], [0.5, 0.5]], dtype=torch.float64)
    near = image_faithfulness(4.0, 2.0, ["a"], {"a": torch.tensor([1.0, 0.05], dtype=torch.float64)},
                              {"a": top}, {"a": random})
    far = image_faithfulness(1.0, 2.0, ["a"], {"a": torch.tensor([0.1, 0.9], dtype=torch.float64)},
                             {"a": top}, {"a": random})
    assert near["ratio"] == 2.0 and far["ratio"] == 0.5
    assert near["path"] > THRESHOLD > far["path"]
    one = unit_faithfulness([near])
    assert one["flagged"] is False and one["ratio"] == 2.0 and "images" not in one
    both = unit_faithfulness([near, far])
    assert both["ratio"] == pytest.approx(1.25) and both["path"] == pytest.approx((near["path"] + far["path"]) / 2)
    assert both["flagged"] is (both["path"] < THRESHOLD) and [im["ratio"] for im in both["images"]] == [2.0, 0.5]
    assert both["layers"][0]["render"] == pytest.approx((near["layers"][0]["render"] + far["layers"][0]["render"]) / 2)
    none = image_faithfulness(1.0, 0.0, ["a"], {"a": top[0]}, {"a": top[:1]}, {"a": random})
    assert none["ratio"] is None and none["path"] is None  # one top example: nothing to compare the render with
    assert unit_faithfulness([none])["flagged"] is False


def test_the_layers_compared_are_earlier_ones_of_the_same_type_evenly_spaced() -> None:
    blocks = [f"_blocks.{i}" for i in range(16)]
    names = ["_conv_stem", "_bn0", *[n for b in blocks for n in (b, f"{b}._depthwise_conv")], "_conv_head", "_fc"]
    types = {n: ("MBConvBlock" if n in blocks else "Conv2d") for n in names}
    shapes = {n: (8, 4, 4) for n in names}
    assert path_layers(names, types, shapes, "_blocks.13") == ["_blocks.0", "_blocks.4", "_blocks.8", "_blocks.12"]
    assert path_layers(names, types, shapes, "_blocks.2") == ["_blocks.0", "_blocks.1"]
    assert path_layers(names, types, shapes, "_blocks.0") == ["_conv_stem", "_bn0"]  # no earlier block: any map
    assert path_layers(names, types, shapes, "_blocks.3._depthwise_conv", 2) == ["_conv_stem", "_blocks.2._depthwise_conv"]
    tiny = ["conv1", "act1", "conv2", "act2", "conv3", "act3", "pool", "fc"]
    kinds = {n: {"c": "Conv2d", "a": "ReLU", "p": "Pool", "f": "Linear"}[n[0]] for n in tiny}
    sizes = {n: (8, 4, 4) for n in tiny} | {"pool": (32, 1, 1), "fc": (10,)}
    assert path_layers(tiny, kinds, sizes, "act3") == ["act1", "act2"]
