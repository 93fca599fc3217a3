"""Interpolation between two objectives: weights, shared low-resolution parameters, strip and animations."""
from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from PIL import Image

from featviz_cli.api import render_to_dir
from featviz_cli.config import ParamSpec, parse_spec
from featviz_cli.engine import render
from featviz_cli.models.preprocess import Preprocess
from featviz_cli.errors import SpecError
from featviz_cli.hooks import forward_to
from featviz_cli.interpolate import SharedLowRes, frame_weights, interpolation_objective, lowres
from featviz_cli.objectives import channel
from featviz_cli.outputs import gif_bytes, webp_supported
from featviz_cli.param import make_param

CPU = torch.device("cpu")


def _interp_spec(tiny_spec: dict[str, Any], frames: int = 5, steps: int = 3, **interp: Any) -> dict[str, Any]:
    return {**tiny_spec, "objective": [{"type": "channel", "layer": "conv2", "unit": 3},
                                       {"type": "channel", "layer": "conv2", "unit": 14}],
            "interpolate": {"frames": frames, **interp}, "steps": steps}


def test_frame_weights_go_monotonically_from_a_to_b() -> None:
    w = frame_weights(5)
    assert w == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert all(a < b for a, b in zip(w, w[1:]))


def test_objective_blends_per_frame(tiny_spec: dict[str, Any]) -> None:
    spec = parse_spec(_interp_spec(tiny_spec, frames=3))
    o = interpolation_objective(spec.objective, 3)
    acts = {"conv2": torch.rand(3, 16, 4, 4)}
    a, b = channel("conv2", 3)(acts), channel("conv2", 14)(acts)
    assert torch.allclose(o(acts), torch.stack([a[0], (a[1] + b[1]) / 2, b[2]]))
    assert [o.label(i) for i in range(3)] == ["t=0.00", "t=0.50", "t=1.00"]
    assert o.description == "interpolate(channel conv2:3 -> channel conv2:14, 3 frames)"


def test_lowres_ramps_linearly_across_the_batch() -> None:
    ends = torch.stack([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)])
    up = lowres(ends, 5, 8)
    assert up.shape == (5, 3, 8, 8)
    assert [float(v) for v in up.mean((1, 2, 3))] == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    assert torch.equal(lowres(torch.ones(1, 3, 2, 2), 4, 8), torch.ones(4, 3, 8, 8))


def test_shared_parameters_are_shared() -> None:
    gen = torch.Generator().manual_seed(0)
    base = make_param(ParamSpec(size=16), 4, gen, CPU)
    image = SharedLowRes(base, 4, 16, generator=gen, device=CPU)
    assert len(image.params) == 1 + 5 and image().shape == (4, 3, 16, 16)
    # A change of one shared tensor changes every frame, a change of the base only its frame.
    before = image().detach()
    with torch.no_grad():
        image.shared[0].add_(1.0)
    assert ((image() - before).abs().flatten(1).amax(1) > 0.1).all()
    image.blur_(0.5)  # blurs the base and the shared parts that are big enough


def _objective_values(model, info, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.nn.functional.interpolate(images, size=info.input_size, mode="bilinear", align_corners=False)
    with torch.no_grad():
        acts = forward_to(model, Preprocess(info)(x), ["conv2"])
    return channel("conv2", 3)(acts), channel("conv2", 14)(acts)


@pytest.mark.parametrize("shared", [True, False])
def test_frames_change_monotonically_from_a_to_b(tiny_spec: dict[str, Any], tiny_model, shared: bool) -> None:
    model, info = tiny_model
    spec = parse_spec({**_interp_spec(tiny_spec, frames=6, steps=60, shared=shared), "param": {"size": 32}})
    result = render(spec, model=model, info=info)
    a, b = _objective_values(model, info, result.images)
    lead = (b - a).tolist()
    assert all(x < y for x, y in zip(lead, lead[1:])), lead  # B gains on A frame by frame
    assert lead[-1] - lead[0] > 0.3
    if not shared:  # the shared parts pull every frame towards what the frames have in common
        assert a[0] > b[0] and b[-1] > a[-1]
    assert result.techniques["interpolation_weights_b"] == pytest.approx(frame_weights(6))


def test_shared_parts_make_neighbours_closer(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model

    def neighbour_distance(shared: bool) -> float:
        spec = parse_spec({**_interp_spec(tiny_spec, frames=5, steps=30, shared=shared), "param": {"size": 32}})
        images = render(spec, model=model, info=info).images
        return float((images[1:] - images[:-1]).abs().mean())

    assert neighbour_distance(True) < neighbour_distance(False)


def test_writes_strip_gif_webp_and_meta_last(tiny_spec: dict[str, Any], tmp_path) -> None:
    spec = parse_spec(_interp_spec(tiny_spec, frames=4))
    result, files = render_to_dir(spec, tmp_path)
    names = set(files)
    assert {"strip.png", "interpolation.gif", "grid.png"} <= names
    assert ("interpolation.webp" in names) == webp_supported()
    assert sum(n.endswith(".png") and n[:3].isdigit() for n in names) == 4
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert set(meta["files"]) == names
    assert meta["objective"].startswith("interpolate(")
    with Image.open(tmp_path / "strip.png") as strip:
        assert strip.size == (4 * 16 + 5 * 2, 16 + 2 * 2)  # one row, 2 px padding
    with Image.open(tmp_path / "interpolation.gif") as gif:
        assert gif.n_frames == 6  # 0 1 2 3 2 1: A to B and back
        assert gif.info["duration"] == 150 and gif.info["loop"] == 0


def test_gif_is_deterministic_and_keeps_colours() -> None:
    frames = torch.rand(3, 8, 8, 3, generator=torch.Generator().manual_seed(0)).numpy()
    assert gif_bytes(frames) == gif_bytes(frames)
    flat = (torch.ones(2, 8, 8, 3) * torch.tensor([1.0, 0.0, 0.0])).numpy()
    import io

    with Image.open(io.BytesIO(gif_bytes(flat, pingpong=False))) as gif:
        assert gif.convert("RGB").getpixel((3, 3)) == (255, 0, 0)


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


def test_same_seed_same_frames(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    spec = parse_spec(_interp_spec(tiny_spec, frames=3))
    a, b = (render(spec, model=model, info=info).images for _ in range(2))
    assert torch.equal(a, b)


def test_unshared_interpolation_works_with_any_param(tiny_spec: dict[str, Any]) -> None:
    data = {**_interp_spec(tiny_spec, frames=3, shared=False), "param": {"size": 16, "type": "cppn"}}
    assert render(parse_spec(data)).images.shape == (3, 3, 16, 16)
