"""params/maco.py: phase-only optimization with a fixed magnitude spectrum."""
from __future__ import annotations

from typing import Any

import pytest
import torch

from featviz_cli import engine
from featviz_cli.config import load_spec, parse_spec
from featviz_cli.errors import SpecError
from featviz_cli.params.maco import MacoImage, hermitian_phase
from featviz_cli.params.spectrum import one_over_f
from featviz_cli.recipe import build_recipe
from featviz_cli.runtime import Execution

from core_helpers import CPU, ROOT, gen


def _magnitude_of(image: MacoImage) -> torch.Tensor:
    return torch.fft.rfft2(image.raw(), norm="ortho").abs()


@pytest.mark.parametrize("size", [16, 17])
def test_image_magnitude_is_the_fixed_one_times_a_constant(size: int) -> None:
    mag = one_over_f(size)
    image = MacoImage(2, size, mag, generator=gen(), device=CPU)
    got = _magnitude_of(image).detach()
    nonzero = mag > 0
    ratio = got[:, nonzero] / mag[nonzero]
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-4)
    assert got[..., 0, 0].abs().max() < 1e-5  # no DC: the mean colour is grey


def test_optimization_changes_the_phase_but_never_the_magnitude(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    spec = parse_spec({**tiny_spec, "param": {"type": "maco", "size": 16}, "steps": 10,
                       "optimizer": {"type": "nadam", "lr": 1.0}})
    recipe = build_recipe(spec, info, CPU)
    image = recipe.image
    assert isinstance(image, MacoImage) and image.params == [image.phase]
    before_mag = _magnitude_of(image).detach()
    before_phase = torch.angle(image.spectrum()).detach()
    fixed = image.magnitude.clone()
    engine.optimize(model, info, recipe, Execution(CPU))
    after_mag = _magnitude_of(image).detach()
    assert torch.allclose(after_mag, before_mag, rtol=1e-4, atol=1e-5)
    assert torch.equal(image.magnitude, fixed)
    changed = (torch.angle(image.spectrum()).detach() - before_phase).abs()
    assert changed.mean() > 0.1  # the phase did move


def test_hermitian_phase_makes_irfft2_exact() -> None:
    size = 8
    phase = hermitian_phase(torch.randn(1, 3, size, size // 2 + 1, generator=gen()), size)
    spectrum = torch.polar(one_over_f(size).expand(1, -1, -1, -1), phase)
    back = torch.fft.rfft2(torch.fft.irfft2(spectrum, s=(size, size), norm="ortho"), norm="ortho")
    assert torch.allclose(back, spectrum, atol=1e-5)


def test_cannot_be_blurred_and_says_how_to_fix() -> None:
    with pytest.raises(NotImplementedError, match="blur_every: 0"):
        MacoImage(1, 8, one_over_f(8), generator=gen(), device=CPU).blur_(1.0)


@pytest.mark.parametrize(
    ("change", "field", "fix"),
    [
        ({"param": {"type": "fft", "spectrum": "s.pt"}}, "param.spectrum", "only param.type maco"),
        ({"param": {"type": "maco"}, "regularizers": {"blur_every": 4}}, "regularizers.blur_every", "set 0"),
        ({"transforms": [{"type": "crops"}, {"type": "crops"}]}, "transforms[1]", "only one 'crops'"),
        ({"transforms": [{"type": "crops", "box": [0.5]}]}, "transforms[0].box", "[start, end]"),
        ({"transforms": [{"type": "crops", "box": [0.5, 0]}]}, "transforms[0].box", "(0, 1]"),
        ({"transforms": [{"type": "jitter", "pixels": 2, "count": 3}]}, "transforms[0].count", "only 'crops'"),
        ({"transforms": [{"type": "crops", "std": 0.1}]}, "transforms[0].std", "only 'noise'"),
        ({"transforms": [{"type": "noise", "std": -1}]}, "transforms[0].std", ">= 0"),
    ],
)
def test_bad_maco_specs_name_the_field(tiny_spec: dict[str, Any], change: dict, field: str, fix: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({**tiny_spec, **change})
    assert info.value.field == field and fix in str(info.value)


def test_the_example_config_uses_xplique_defaults() -> None:
    spec = load_spec(ROOT / "configs" / "maco.yaml")
    crops = [t for t in spec.transforms if t.type == "crops"][0]
    assert (crops.count, crops.box) == (32, [0.5, 0.05])
    assert (spec.optimizer.type, spec.optimizer.lr, spec.steps) == ("nadam", 1.0, 256)
