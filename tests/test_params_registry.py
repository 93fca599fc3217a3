"""params/_registry.py: the registered names are the spec's choices; builders get plain data; no imports."""
from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path
from typing import Any, Mapping

import pytest
import torch

from featviz_cli import params
from featviz_cli.config import GeneratorSpec, ParamSpec
from featviz_cli.params import _registry
from featviz_cli.params.pixel import PixelImage
from featviz_cli.recipe import image_param

from core_helpers import CPU, gen


def test_the_registered_names_are_the_choices_of_param_type() -> None:
    choices = typing.get_args(typing.get_type_hints(ParamSpec)["type"])
    assert choices and sorted(choices) == params.param_names()


def test_an_unknown_name_is_a_key_error_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown parameterization 'fourier'; known: cppn, fft, generator, maco, pixel"):
        params.param_kind("fourier")


def test_only_pixel_and_fft_are_pixel_like() -> None:
    assert [n for n in params.param_names() if params.param_kind(n).pixel_like] == ["fft", "pixel"]


def _plain(value: Any) -> bool:
    """True for data made only of dicts, lists, tuples, strings, numbers, booleans and None."""
    if isinstance(value, Mapping):
        return type(value) is dict and all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


@pytest.mark.parametrize(
    "spec",
    [ParamSpec(type="pixel", size=8, sd=0.2, decorrelate=False),
     ParamSpec(type="generator", size=8, generator=GeneratorSpec(latent_size=4, python="m:f", kwargs={"n": [1, 2]}))],
    ids=["pixel", "generator"],
)
def test_a_registered_builder_receives_plain_data(spec: ParamSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "_KINDS", dict(_registry._KINDS))  # the test's kind leaves no trace
    seen: list[Mapping[str, Any]] = []

    @params.register_param(spec.type, describe=lambda o: f"probe {o['size']}px")
    def probe(o: Mapping[str, Any], batch: int, generator: torch.Generator, device: torch.device) -> PixelImage:
        seen.append(o)
        return PixelImage(batch, o["size"], sd=o["sd"], decorrelate=o["decorrelate"], output=o["output"],
                          generator=generator, device=device)

    image = image_param(spec, 2, gen(), CPU)
    assert len(seen) == 1 and _plain(seen[0]) and not dataclasses.is_dataclass(seen[0])
    assert seen[0] == dataclasses.asdict(spec)  # every field, under its spec name
    assert image().shape == (2, 3, 8, 8)
    assert params.describe_param(spec.type, seen[0]) == "probe 8px"


def test_the_registry_imports_nothing_but_the_standard_library() -> None:
    tree = ast.parse(Path(_registry.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]  # nothing of featviz
    assert imported <= {"__future__", "dataclasses", "typing"}
