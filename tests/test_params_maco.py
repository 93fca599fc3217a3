"""params/maco.py: phase-only optimization with a fixed magnitude spectrum."""
from __future__ import annotations

import shutil
from typing import Any

import pytest
import torch

from featviz_cli import engine
from featviz_cli import runtime as rt
from featviz_cli.config import load_spec, parse_spec
from featviz_cli.errors import SpecError
from featviz_cli.images import list_images, load_image
from featviz_cli.params import describe_param
from featviz_cli.params.base import to_valid_rgb
from featviz_cli.params.maco import MacoImage, hermitian_phase
from featviz_cli.params.spectrum import (
    NATURAL_AMPLITUDES,
    NATURAL_SLOPES,
    compute_spectrum,
    fit_power_law,
    natural_magnitude,
    one_over_f,
)
from featviz_cli.recipe import build_recipe
from featviz_cli.runtime import Execution

from conftest import DATA
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


def test_the_example_config_optimizes_crops_of_the_model_s_input_size() -> None:
    spec = load_spec(ROOT / "configs" / "maco.yaml")
    crops = [t for t in spec.transforms if t.type == "crops"][0]
    assert (crops.count, crops.box, crops.centres) == (4, [0.35, 0.35], "uniform")
    assert round(spec.param.size * crops.box[0]) == 224  # EfficientNet-Lite0's input: crops are not upsampled
    assert (spec.optimizer.type, spec.optimizer.lr, spec.steps) == ("nadam", 1.0, 128)
    assert spec.objective[0].type == "logit"  # the recipe measured on class logits (QUALITY.md)


def test_the_channel_config_is_the_recipe_measured_on_conv_head() -> None:
    spec = load_spec(ROOT / "configs" / "maco_channels.yaml")
    crops = [t for t in spec.transforms if t.type == "crops"][0]
    assert (spec.param.type, spec.param.size, crops.count, crops.box) == ("maco", 192, 2, [0.67, 0.67])
    assert (spec.optimizer.type, spec.optimizer.lr, spec.steps) == ("nadam", 0.5, 128)
    assert (spec.objective[0].type, spec.objective[0].layer) == ("channel", "_conv_head")


# ---------------------------------------------------------------- contrast and colour like the photos'


def _maco(size: int, magnitude: torch.Tensor, batch: int = 4, **kwargs: Any) -> MacoImage:
    return MacoImage(batch, size, magnitude, generator=torch.Generator().manual_seed(0), device=CPU, **kwargs)


def _contrast(images: torch.Tensor) -> tuple[float, float]:
    """Mean over (N, 3, H, W) images of the pixel std and of the 1st-99th percentile spread."""
    std = float(images.std(dim=(2, 3)).mean())
    spread = sum(float(x.quantile(0.99) - x.quantile(0.01)) for x in images) / len(images)
    return std, spread


def _colourfulness(images: torch.Tensor) -> float:
    """Mean Hasler-Suesstrunk colourfulness (grey: 0; photos: 30-110) of (N, 3, H, W) images in [0, 1]."""
    out = []
    for x in images.double() * 255:
        rg, yb = x[0] - x[1], (x[0] + x[1]) / 2 - x[2]
        out.append(float(torch.hypot(rg.std(), yb.std()) + 0.3 * torch.hypot(rg.mean(), yb.mean())))
    return sum(out) / len(out)


def _photos(size: int) -> torch.Tensor:
    return torch.stack([load_image(p, size) for p in list_images(DATA)])


def test_random_phase_images_have_the_contrast_and_colour_of_the_photos() -> None:
    photos = _photos(128)
    p_std, p_spread = _contrast(photos)
    with torch.no_grad():
        now = _maco(128, natural_magnitude(128))()
        before = _maco(128, one_over_f(128), phase_std=1.0, gain=1.0)()  # the constants before: pale
    std, spread = _contrast(now)
    assert abs(std - p_std) < 0.2 * p_std and spread > 0.85 * p_spread
    assert _colourfulness(now) > 0.75 * _colourfulness(photos)
    b_std, b_spread = _contrast(before)
    assert b_std < 0.7 * p_std and b_spread < 0.7 * p_spread and _colourfulness(before) < 0.45 * _colourfulness(photos)


def test_no_coherent_spike_at_the_corners() -> None:
    size = 64
    corner = torch.arange(size)
    d = torch.minimum(corner, size - corner).float()
    near = torch.hypot(d[:, None], d[None, :]) < 8
    area = float(near.float().mean())

    def corner_share(image: MacoImage) -> float:
        with torch.no_grad():
            v = image.raw().pow(2)
        return float(v[..., near].sum() / v.sum())

    assert corner_share(_maco(size, natural_magnitude(size), batch=8)) < 2 * area
    assert corner_share(_maco(size, natural_magnitude(size), batch=8, phase_std=1.0)) > 5 * area  # Horama's phase


def test_built_in_magnitude_is_the_power_law_of_the_seven_varied_photos(tmp_path) -> None:
    pytest.importorskip("skimage")
    pytest.importorskip("sklearn")
    from benchmarks.varied_photos import package_photos

    for path in package_photos():
        shutil.copy(path, tmp_path / path.name)
    photos = compute_spectrum(tmp_path, 256)
    assert photos["images"] == 7 and photos["skipped"] == 0
    for got in (fit_power_law(photos["magnitude"], 2 / 256, 0.4), fit_power_law(natural_magnitude(256), 2 / 256, 0.4)):
        assert got[0] == pytest.approx(list(NATURAL_SLOPES), abs=0.02)
        assert got[1] == pytest.approx(list(NATURAL_AMPLITUDES), abs=0.02)
    # the four photos of tests/data, mostly blue and brown, have much less colour than these seven
    slopes, amplitudes = fit_power_law(compute_spectrum(DATA, 256)["magnitude"], 2 / 256, 0.4)
    assert all(a < b - 0.2 for a, b in zip(amplitudes[1:], NATURAL_AMPLITUDES[1:]))
    mag = natural_magnitude(64)
    assert mag.shape == (3, 64, 33) and mag[:, 0, 0].eq(0).all() and (mag[:, 1:, 1:] > 0).all()
    assert describe_param("maco", {"size": 64, "spectrum": None}) == "maco(phase only, magnitude natural (built-in)), 64px"


def test_a_render_keeps_the_magnitude_exactly_and_the_colours_span_the_range(tiny_spec: dict[str, Any],
                                                                           tiny_model) -> None:
    model, info = tiny_model
    spec = parse_spec({**tiny_spec, "objective": {"type": "channel", "layer": "act2", "units": [1, 3]},
                       "param": {"type": "maco", "size": 32}, "steps": 12, "relu_redirect": 0,
                       "transforms": [{"type": "crops", "count": 2, "box": [0.5, 0.5], "centres": "uniform"},
                                      {"type": "noise"}],
                       "optimizer": {"type": "nadam", "lr": 1.0}})
    recipe = build_recipe(spec, info, CPU)
    image = recipe.image
    assert isinstance(image, MacoImage) and image.params == [image.phase]
    start = image.phase.detach().clone()
    fixed = image.magnitude.clone()
    run = engine.optimize(model, info, recipe, rt.Execution.resolve("cpu", "fp32", False, False))
    assert (image.phase.detach() - start).abs().mean() > 0.1  # the phase moved
    assert torch.equal(image.magnitude, fixed)
    with torch.no_grad():
        got = torch.fft.rfft2(image.raw(), norm="ortho").abs()
    nonzero = fixed > 0
    ratio = got[:, nonzero] / fixed[nonzero]
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-4)
    std, spread = _contrast(run.images)
    p_std, p_spread = _contrast(_photos(32))
    assert std > 0.8 * p_std and spread > 0.8 * p_spread
    assert torch.allclose(run.images, to_valid_rgb(image.raw().detach(), decorrelate=True, output="sigmoid"))
