"""Starting from a photo: the first image equals the photo; the init_l2 penalty keeps it near."""
from __future__ import annotations

from typing import Any

import pytest
import torch

from featviz_cli.config import ParamSpec, parse_spec
from featviz_cli.engine import render
from featviz_cli.errors import SpecError
from featviz_cli.images import list_images, load_image
from featviz_cli.param import from_valid_rgb, make_param, to_valid_rgb

from conftest import DATA

CPU = torch.device("cpu")
PHOTO = str(DATA / "chelsea.jpg")


@pytest.mark.parametrize("kind", ["fft", "pixel"])
@pytest.mark.parametrize("output", ["sigmoid", "clamp"])
@pytest.mark.parametrize("decorrelate", [True, False])
@pytest.mark.parametrize("size", [32, 33])
def test_first_image_is_the_photo(kind: str, output: str, decorrelate: bool, size: int) -> None:
    spec = ParamSpec(type=kind, size=size, output=output, decorrelate=decorrelate, init_image=PHOTO)
    image = make_param(spec, 2, torch.Generator().manual_seed(0), CPU)
    photo = load_image(PHOTO, size)
    got = image().detach()
    assert got.shape == (2, 3, size, size)
    # sigmoid: pure black/white come back as 0.001/0.999 (a logit of 0 or 1 is infinite)
    assert (got - photo).abs().max() < (1.01e-3 if output == "sigmoid" else 1e-5)
    assert all(t.requires_grad for t in image.params)


def test_from_valid_rgb_inverts_to_valid_rgb() -> None:
    raw = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    for decorrelate in (True, False):
        img = to_valid_rgb(raw, decorrelate=decorrelate, output="sigmoid")
        assert torch.allclose(from_valid_rgb(img, decorrelate=decorrelate, output="sigmoid"), raw, atol=1e-4)


def test_load_image_resizes_and_centre_crops() -> None:
    img = load_image(DATA / "coffee.jpg", 40)  # 384x256 -> 60x40 -> centre 40x40
    assert img.shape == (3, 40, 40) and 0 <= img.min() and img.max() <= 1
    assert list_images(DATA) == sorted(DATA / f for f in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"))


def test_unreadable_photo_names_the_field(tmp_path) -> None:
    bad = tmp_path / "x.png"
    bad.write_bytes(b"nope")
    with pytest.raises(SpecError, match=r"param.init_image: .*cannot read an image"):
        load_image(bad, 16)
    with pytest.raises(SpecError, match=r"param.init_image: .*no such file"):
        load_image(tmp_path / "missing.png", 16)


def _photo_spec(tiny_spec: dict[str, Any], init_l2: float, steps: int = 20) -> dict[str, Any]:
    return {**tiny_spec, "objective": {"type": "deepdream", "layer": "act2"}, "steps": steps,
            "param": {"size": 32, "init_image": PHOTO}, "regularizers": {"init_l2": init_l2},
            "optimizer": {"lr": 0.1}}


def test_deepdream_on_a_photo_starts_there_and_init_l2_keeps_it_near(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    photo = load_image(PHOTO, 32)
    free = render(parse_spec(_photo_spec(tiny_spec, 0.0)), model=model, info=info)
    held = render(parse_spec(_photo_spec(tiny_spec, 50.0)), model=model, info=info)
    d_free = float((free.images[0] - photo).pow(2).mean())
    d_held = float((held.images[0] - photo).pow(2).mean())
    assert 0 < d_held < 0.5 * d_free
    assert "L2(image - init_image)" not in free.description  # penalties are not the objective
    start = render(parse_spec(_photo_spec(tiny_spec, 0.0, steps=1) | {"optimizer": {"lr": 1e-9}}), model=model, info=info)
    assert (start.images[0] - photo).abs().max() < 2e-3


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
