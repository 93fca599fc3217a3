"""MACO: phase-only optimization with a fixed magnitude spectrum, the spectrum file, multi-crop transforms."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from featviz_cli.cli import app
from featviz_cli.config import parse_spec
from featviz_cli.engine import render
from featviz_cli.errors import SpecError
from featviz_cli.maco import (
    MacoImage,
    compute_spectrum,
    hermitian_phase,
    load_magnitude,
    one_over_f,
    resample_magnitude,
    save_spectrum,
)
from featviz_cli.transforms import Crops, Noise, compose

from conftest import DATA, ROOT, featviz_cmd

CPU = torch.device("cpu")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _magnitude_of(image: MacoImage) -> torch.Tensor:
    return torch.fft.rfft2(image.raw(), norm="ortho").abs()


@pytest.mark.parametrize("size", [16, 17])
def test_image_magnitude_is_the_fixed_one_times_a_constant(size: int) -> None:
    mag = one_over_f(size)
    image = MacoImage(2, size, mag, generator=_gen(), device=CPU)
    got = _magnitude_of(image).detach()
    nonzero = mag > 0
    ratio = got[:, nonzero] / mag[nonzero]
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-4)
    assert got[..., 0, 0].abs().max() < 1e-5  # no DC: the mean colour is grey


def test_optimization_changes_the_phase_but_never_the_magnitude(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    spec = parse_spec({**tiny_spec, "param": {"type": "maco", "size": 16}, "steps": 10,
                       "optimizer": {"type": "nadam", "lr": 1.0}})
    gen = torch.Generator().manual_seed(0)
    from featviz_cli import engine
    from featviz_cli.param import make_param

    image = make_param(spec.param, 1, gen, CPU)
    assert isinstance(image, MacoImage) and image.params == [image.phase]
    before_mag = _magnitude_of(image).detach()
    before_phase = torch.angle(image.spectrum()).detach()
    fixed = image.magnitude.clone()
    engine.optimize(model, info, engine.obj.from_spec(spec.objective), image, engine.build_transforms(spec, info),
                    steps=10, lr=1.0, optimizer="nadam", generator=gen, device=CPU)
    after_mag = _magnitude_of(image).detach()
    assert torch.allclose(after_mag, before_mag, rtol=1e-4, atol=1e-5)
    assert torch.equal(image.magnitude, fixed)
    changed = (torch.angle(image.spectrum()).detach() - before_phase).abs()
    assert changed.mean() > 0.1  # the phase did move


def test_maco_render_raises_the_objective(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    spec = parse_spec({**tiny_spec, "objective": {"type": "channel", "layer": "conv2", "unit": 3},
                       "param": {"type": "maco", "size": 32}, "steps": 30,
                       "transforms": [{"type": "crops", "count": 4}, {"type": "noise"}],
                       "optimizer": {"type": "nadam", "lr": 1.0}})
    result = render(spec, model=model, info=info)
    assert sum(result.curve[-5:]) > sum(result.curve[:5]) + 0.1
    assert result.techniques["samples_per_step"] == 4


def test_same_seed_same_maco_render(tiny_spec: dict[str, Any], tiny_model) -> None:
    model, info = tiny_model
    data = {**tiny_spec, "param": {"type": "maco", "size": 16}, "steps": 3,
            "transforms": [{"type": "crops", "count": 3}, {"type": "noise"}]}
    a, b = (render(parse_spec(data), model=model, info=info).images for _ in range(2))
    assert torch.equal(a, b)


def test_hermitian_phase_makes_irfft2_exact() -> None:
    size = 8
    phase = hermitian_phase(torch.randn(1, 3, size, size // 2 + 1, generator=_gen()), size)
    spectrum = torch.polar(one_over_f(size).expand(1, -1, -1, -1), phase)
    back = torch.fft.rfft2(torch.fft.irfft2(spectrum, s=(size, size), norm="ortho"), norm="ortho")
    assert torch.allclose(back, spectrum, atol=1e-5)


def test_spectrum_resampling_matches_frequencies() -> None:
    assert torch.allclose(resample_magnitude(one_over_f(32), 16), one_over_f(16))
    assert torch.equal(resample_magnitude(one_over_f(16), 16), one_over_f(16))


def test_spectrum_of_a_folder_and_loading_it(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("coffee.jpg", "chelsea.jpg"):
        (tmp_path / "sub" / name).write_bytes((DATA / name).read_bytes())
    (tmp_path / "broken.png").write_bytes(b"not an image")
    result = compute_spectrum(tmp_path, 32)
    assert (result["images"], result["skipped"], result["size"]) == (2, 1, 32)
    assert result["magnitude"].shape == (3, 32, 17)
    save_spectrum(result, tmp_path / "s.pt")
    mag = load_magnitude(str(tmp_path / "s.pt"), 24)
    assert mag.shape == (3, 24, 13) and (mag >= 0).all() and mag[:, 0, 0].eq(0).all()
    # natural images: more energy at low than at high frequencies
    assert mag[0, 1, 1] > 3 * mag[0, 12, 12]


def test_spectrum_command(tmp_path: Path) -> None:
    out = tmp_path / "spec.pt"
    res = CliRunner().invoke(app, ["spectrum", str(DATA), "-o", str(out), "--size", "32"])
    assert res.exit_code == 0, res.output
    assert str(out) in res.stdout and out.is_file()
    spec = parse_spec({"objective": {"type": "channel", "layer": "act2", "unit": 0},
                       "param": {"type": "maco", "size": 16, "spectrum": str(out)}})
    assert spec.param.spectrum == str(out)


def test_spectrum_command_errors(tmp_path: Path) -> None:
    proc = subprocess.run([*featviz_cmd(), "spectrum", str(tmp_path / "none")], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 2 and "not a directory" in proc.stderr
    proc = subprocess.run([*featviz_cmd(), "spectrum", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "no images found" in proc.stderr


def test_bad_spectrum_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    torch.save({"magnitude": torch.zeros(3, 4)}, bad)
    with pytest.raises(SpecError, match=r"param.spectrum: .*not a spectrum file"):
        load_magnitude(str(bad), 16)
    with pytest.raises(SpecError, match=r"param.spectrum: .*no such file"):
        load_magnitude(str(tmp_path / "missing.pt"), 16)


def test_crops_are_crop_major_and_shrink_with_progress() -> None:
    x = torch.arange(2.0).view(2, 1, 1, 1).expand(2, 3, 16, 16).contiguous()
    f = compose([Crops(count=3, box_start=0.5, box_end=0.05)], out_size=8)
    y = f(x, _gen())
    assert y.shape == (6, 3, 8, 8)
    assert [float(v) for v in y.mean((1, 2, 3))] == pytest.approx([0, 1, 0, 1, 0, 1])
    crops = Crops(count=1)
    assert crops.box() == 0.5
    f = compose([crops])
    f.set_progress(1.0)
    assert crops.box() == pytest.approx(0.05)


def test_crops_stay_inside_the_image() -> None:
    ramp = torch.linspace(0, 1, 64).expand(1, 3, 64, 64).contiguous()
    y = compose([Crops(count=50, box_start=0.3, box_end=0.3)], out_size=16)(ramp, _gen(3))
    assert y.min() >= 0 and y.max() <= 1
    widths = y[:, 0, 0, -1] - y[:, 0, 0, 0]  # a crop of side s spans about s of the ramp
    assert widths.min() > 0.1 and widths.max() < 0.5


def test_noise_has_the_asked_strength() -> None:
    y = Noise(0.1)(torch.zeros(4, 3, 64, 64), _gen())
    expected = (0.1**2 + 0.1**2 / 12) ** 0.5  # normal std plus uniform(-std/2, std/2)
    assert float(y.std()) == pytest.approx(expected, rel=0.05)


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
    from featviz_cli.config import load_spec

    spec = load_spec(ROOT / "configs" / "maco.yaml")
    crops = [t for t in spec.transforms if t.type == "crops"][0]
    assert (crops.count, crops.box) == (32, [0.5, 0.05])
    assert (spec.optimizer.type, spec.optimizer.lr, spec.steps) == ("nadam", 1.0, 256)
