"""params/generator.py: the latent is optimized, the generator's weights never change; loading errors."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn

from featviz_cli.config import parse_spec
from featviz_cli.engine import render
from featviz_cli.errors import SpecError
from featviz_cli.params import generator as pg
from featviz_cli.params.generator import GeneratorImage, load_generator
from featviz_cli.recipe import image_param

from core_helpers import CPU, gen

GEN_SOURCE = '''
import torch
import torch.nn as nn


def build(latent_size=8, seed=0, gain=8.0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Linear(latent_size, 16 * 4 * 4), nn.Unflatten(1, (16, 4, 4)), nn.ReLU(),
            nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1), nn.ReLU(),   # 8 x 8
            nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1), nn.Tanh(),    # 16 x 16
        )
    with torch.no_grad():
        net[5].weight.mul_(gain)  # images with contrast, not a flat grey
    return net


def not_a_module():
    return 42
'''


@pytest.fixture
def gen_module(tmp_path: Path, monkeypatch) -> str:
    """A small generator module the tests build, importable from the current directory."""
    name = f"featviz_test_gen_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(GEN_SOURCE)
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def _spec(tiny_spec: dict[str, Any], generator: dict[str, Any], steps: int = 30) -> dict[str, Any]:
    return {**tiny_spec, "objective": {"type": "channel", "layer": "conv2", "unit": 14},
            "param": {"type": "generator", "size": 16, "generator": generator}, "steps": steps,
            "optimizer": {"lr": 0.5}}


def _rose(curve: list[float]) -> bool:
    start, end = sum(curve[:5]) / 5, sum(curve[-5:]) / 5
    return end > 1.2 * start > 0


def test_latent_is_optimized_and_weights_never_change(tiny_spec: dict[str, Any], tiny_model, gen_module: str,
                                                       monkeypatch) -> None:
    model, info = tiny_model
    net = load_generator({"python": f"{gen_module}:build", "latent_size": 8})
    monkeypatch.setattr(pg, "load_generator", lambda g: net)  # keep a handle on the very module used
    before = {k: v.clone() for k, v in net.state_dict().items()}
    spec = parse_spec(_spec(tiny_spec, {"python": f"{gen_module}:build", "latent_size": 8}))
    result = render(spec, model=model, info=info)
    assert _rose(result.curve)  # the objective rises
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    assert result.images.shape == (1, 3, 16, 16)


def test_only_the_latent_is_a_parameter(gen_module: str) -> None:
    net = load_generator({"python": f"{gen_module}:build", "latent_size": 8})
    image = GeneratorImage(net, 2, 32, latent_size=8, output_range=(-1, 1), generator=gen(), device=CPU)
    assert image.params == [image.latent] and image.latent.shape == (2, 8)
    img = image()
    assert img.shape == (2, 3, 32, 32)  # 16 px output resized to the param size
    assert 0 <= img.min() and img.max() <= 1
    img.sum().backward()
    assert image.latent.grad is not None and all(p.grad is None for p in net.parameters())


def test_torchscript_generator(tiny_spec: dict[str, Any], tiny_model, gen_module: str, tmp_path: Path) -> None:
    model, info = tiny_model
    net = load_generator({"python": f"{gen_module}:build", "latent_size": 8})
    path = tmp_path / "gen.pt"
    with warnings.catch_warnings():  # torch.jit is deprecated upstream but still reads and writes these files
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(net), str(path))
    spec = parse_spec(_spec(tiny_spec, {"checkpoint": str(path), "latent_size": 8, "output_range": [-1, 1]}))
    result = render(spec, model=model, info=info)
    assert _rose(result.curve)
    assert result.techniques["param"].startswith("generator(")


def test_output_range_maps_to_unit_interval() -> None:
    class Const(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return torch.full((z.shape[0], 3, 4, 4), 128.0) + 0 * z.sum()

    image = GeneratorImage(Const(), 1, 4, latent_size=2, output_range=(0, 255), generator=torch.Generator(), device=CPU)
    assert torch.allclose(image(), torch.full((1, 3, 4, 4), 128 / 255))


@pytest.mark.parametrize(
    ("generator", "field", "fix"),
    [
        ({"latent_size": 8}, "param.generator.python", "exactly one of 'python'"),
        ({"python": "x:y", "checkpoint": "z.pt", "latent_size": 8}, "param.generator.python", "exactly one"),
        ({"python": "x:y"}, "param.generator.latent_size", "required"),
        ({"python": "x:y", "latent_size": 8, "output_range": [1, -1]}, "param.generator.output_range", "low < high"),
        ({"python": "x:y", "latent_size": 0}, "param.generator.latent_size", ">= 1"),
    ],
)
def test_bad_generator_specs_name_the_field(tiny_spec: dict[str, Any], generator: dict, field: str, fix: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_spec(tiny_spec, generator))
    assert info.value.field == field and fix in str(info.value)


def test_generator_needs_its_section_and_only_there(tiny_spec: dict[str, Any]) -> None:
    data = _spec(tiny_spec, {"python": "x:y", "latent_size": 8})
    data["param"].pop("generator")
    with pytest.raises(SpecError, match="param.generator: required"):
        parse_spec(data)
    data["param"] = {"type": "fft", "generator": {"python": "x:y", "latent_size": 8}}
    with pytest.raises(SpecError, match="only param.type generator"):
        parse_spec(data)


@pytest.mark.parametrize(
    ("python", "latent", "fix"),
    [
        ("no_such_module_xyz:build", 8, "importing 'no_such_module_xyz' failed"),
        ("{mod}:bulid", 8, "Did you mean build?"),
        ("{mod}:not_a_module", 8, "not a torch.nn.Module"),
        ("{mod}", 8, "is not 'package.module:factory'"),
        ("{mod}:build", 5, "check latent_size"),
    ],
)
def test_loading_errors_name_the_field_and_fix(tiny_spec: dict[str, Any], gen_module: str, python: str, latent: int,
                                               fix: str) -> None:
    spec = parse_spec(_spec(tiny_spec, {"python": python.format(mod=gen_module), "latent_size": latent}))
    with pytest.raises(SpecError) as info:
        image_param(spec.param, 1, gen(), CPU)  # as the recipe builds it
    assert info.value.field.startswith("param.generator") and fix in str(info.value)


def test_missing_torchscript_file(tiny_spec: dict[str, Any], tmp_path: Path) -> None:
    spec = parse_spec(_spec(tiny_spec, {"checkpoint": str(tmp_path / "nope.pt"), "latent_size": 8}))
    with pytest.raises(SpecError, match="param.generator.checkpoint: .*no such file"):
        render(spec)
