"""The command line: exit codes, stdout vs stderr, help texts, render outputs, error messages."""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
import yaml
from PIL import Image
from typer.testing import CliRunner

import featviz_cli
from featviz_cli import cli_common
from featviz_cli.cli import app
from featviz_cli.config import parse_spec
from featviz_cli.models import ModelInfo, _registry

from conftest import DATA, ROOT, featviz_cmd
from core_helpers import subprocess_env

STEP_LINE = re.compile(r"^step (\d+)/(\d+) objective \S+$")


@pytest.fixture(autouse=True)
def _no_sticky_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each in-process invocation starts without --debug (see test_debug_does_not_stick)."""
    monkeypatch.setitem(cli_common.state, "debug", False)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _spec_file(tmp_path: Path, data: dict[str, Any], name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(featviz_cmd() + args, cwd=cwd, env=subprocess_env(), capture_output=True, text=True,
                          timeout=120)


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in stderr
    return lines[0]


def _render(runner: CliRunner, tmp_path: Path, data: dict[str, Any], out: str = "out", *extra: str):
    spec = _spec_file(tmp_path, data, f"{out}.yaml")
    return runner.invoke(app, ["render", str(spec), "--out", str(tmp_path / out), *extra])


def _squash(text: str) -> str:
    """Text without whitespace and box-drawing characters (usage errors come in a wrapped rich panel)."""
    return re.sub(r"[\s\u2500-\u257f]", "", text)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- version, help, schema


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"featviz {featviz_cli.__version__}\n"


COMMANDS = ["render", "validate", "layers", "examples", "schema", "sweep", "gallery", "spectrum", "atlas", "faithfulness",
            "factors", "caricature", "grid", "activation-atlas"]


def test_help_lists_every_command_with_its_text(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    registered = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert registered == set(COMMANDS)
    for command in app.registered_commands:
        doc = (command.callback.__doc__ or "").strip()
        assert doc, f"{command.callback.__name__} has no docstring"
        assert (command.name or command.callback.__name__) in result.stdout
        assert _squash(" ".join(doc.split()[:4])) in _squash(result.stdout)


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(runner: CliRunner, command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    callback = next(c.callback for c in app.registered_commands if (c.name or c.callback.__name__) == command)
    doc = callback.__doc__.strip()  # some commands live in cli_microscope and cli_directions
    assert _squash(doc) in _squash(result.stdout)


def test_render_help_lists_its_options(runner: CliRunner) -> None:
    text = runner.invoke(app, ["render", "--help"]).stdout
    for option in ("--out", "--steps", "--seed", "--device", "--set", "--quiet"):
        assert option in text


def test_no_arguments_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 2  # no_args_is_help: the help, as a usage error
    assert "render" in result.output and "validate" in result.output


def test_schema_prints_json(runner: CliRunner) -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["required"] == ["objective"]
    assert "steps" in schema["properties"]
    assert result.stderr == ""


# ---------------------------------------------------------------- the error boundary


def test_every_command_goes_through_the_error_boundary() -> None:
    for registered in app.registered_commands:
        assert getattr(registered.callback, "__wrapped__", None) is not None, registered.callback.__name__


# ---------------------------------------------------------------- validate


def test_validate_ok(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    spec = _spec_file(tmp_path, tiny_spec)
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 0
    assert result.stdout == f"OK: {spec} (model test_tiny; channel act2; 4 steps)\n"
    assert result.stderr == ""


def test_validate_with_set(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    spec = _spec_file(tmp_path, tiny_spec)
    result = runner.invoke(app, ["validate", str(spec), "--set", "steps=9", "-s", "model.name=other"])
    assert result.exit_code == 0
    assert "(model other; channel act2; 9 steps)" in result.stdout


def test_validate_bad_spec(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    tiny_spec["param"]["size"] = 4
    result = runner.invoke(app, ["validate", str(_spec_file(tmp_path, tiny_spec))])
    assert result.exit_code == 2
    assert _one_error_line(result.stderr) == "Error: param.size: must be >= 8, got 4."
    assert result.stdout == ""


def test_validate_bad_set(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    result = runner.invoke(app, ["validate", str(_spec_file(tmp_path, tiny_spec)), "--set", "steps"])
    assert result.exit_code == 2
    assert "--set: 'steps' is not key.path=value" in _one_error_line(result.stderr)


def test_validate_gives_the_verdict_of_the_command_the_spec_is_for(runner: CliRunner, tmp_path: Path,
                                                                  tiny_spec: dict) -> None:
    tiny_spec["objective"] = {"type": "channel", "layer": "act2", "units": "0:16"}
    spec = _spec_file(tmp_path, tiny_spec)
    refused = runner.invoke(app, ["render", str(spec), "--out", str(tmp_path / "r")])
    assert refused.exit_code == 2
    for args in (["validate", str(spec)], ["validate", str(spec), "--for", "render"]):  # render is the default
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and result.stdout == ""
        assert _one_error_line(result.stderr) == _one_error_line(refused.stderr)  # the same verdict, word for word
        assert "objective.units" in result.stderr and "featviz sweep" in result.stderr
    result = runner.invoke(app, ["validate", str(spec), "--for", "sweep"])
    assert result.exit_code == 0
    assert result.stdout == f"OK: {spec} (model test_tiny; channel act2; 4 steps) for 'featviz sweep'\n"
    swept = runner.invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "s"), "-q", "--steps", "1"])
    assert swept.exit_code == 0, swept.stderr  # and the sweep accepts it
    result = runner.invoke(app, ["validate", str(spec), "--for", "examples"])
    assert result.exit_code == 0 and "for 'featviz examples' (give it --images DIR" in result.stdout


def test_validate_for_sweep_refuses_what_the_sweep_refuses(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    spec = _spec_file(tmp_path, tiny_spec)  # one unit: a render's spec, and a sweep of that unit
    assert runner.invoke(app, ["validate", str(spec), "--for", "sweep"]).exit_code == 0
    tiny_spec["objective"] = [{"type": "channel", "layer": "act2", "units": "0:2"},
                              {"type": "neuron", "layer": "act3", "units": "0:2"}]
    spec = _spec_file(tmp_path, tiny_spec)
    result = runner.invoke(app, ["validate", str(spec), "--for", "sweep"])
    swept = runner.invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "s"), "-q"])
    assert result.exit_code == swept.exit_code == 2
    assert _one_error_line(result.stderr) == _one_error_line(swept.stderr)
    assert "objective[1].units" in result.stderr
    result = runner.invoke(app, ["validate", str(spec), "--for", "gallery"])
    assert result.exit_code == 2 and "--for: 'gallery' is not a command" in _one_error_line(result.stderr)


def test_a_refused_spec_leaves_no_output_directory(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    """Errors found after the output directory was made (the plan, the dictionary) still leave nothing."""
    import numpy as np

    np.save(tmp_path / "dict.npy", np.ones((3, 16), np.float32))  # act3 has 32 channels
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(tmp_path / "photos" / "a.png")
    misfit = {**tiny_spec, "objective": {"type": "direction", "layer": "act3", "vector_file": str(tmp_path / "dict.npy"),
                                         "units": "0:3"}}
    sweep_only = {**tiny_spec, "objective": {"type": "channel", "layer": "act2", "units": "0:16"}}
    cases = {
        "sweep": (["sweep", str(_spec_file(tmp_path, misfit, "a.yaml")), "-q"], "objective.vector_file"),
        "examples": (["examples", str(_spec_file(tmp_path, misfit, "b.yaml")), "--images", str(tmp_path / "photos"), "-q"],
                     "objective.vector_file"),
        "render": (["render", str(_spec_file(tmp_path, sweep_only, "c.yaml"))], "objective.units"),
    }
    for name, (args, field) in cases.items():
        out = tmp_path / "new" / name
        result = runner.invoke(app, [*args, "--out", str(out)])
        assert result.exit_code == 2, (name, result.stderr)
        assert _one_error_line(result.stderr).startswith(f"Error: {field}"), name
        assert not (tmp_path / "new").exists(), (name, sorted(p.name for p in out.rglob("*")) if out.exists() else None)


def test_validate_yaml_syntax_error(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("steps: 4\nobjective: [\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert str(path) in line and "line 3" in line and "YAML syntax error" in line


@pytest.mark.parametrize("command", ["validate", "render"])
def test_missing_config_is_a_usage_error(runner: CliRunner, tmp_path: Path, command: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [command, "nope.yaml"])
    assert result.exit_code == 2
    assert _squash("'nope.yaml' does not exist") in _squash(result.output)
    assert list(tmp_path.iterdir()) == []


def test_config_directory_is_a_usage_error(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    result = runner.invoke(app, ["validate", "specs"])
    assert result.exit_code == 2
    assert _squash("'specs' is a directory") in _squash(result.output)


def test_debug_does_not_stick(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    tiny_spec["stpes"] = 3
    spec = str(_spec_file(tmp_path, tiny_spec))
    assert runner.invoke(app, ["--debug", "validate", spec]).exit_code == 1  # the traceback run
    result = runner.invoke(app, ["validate", spec])
    assert result.exit_code == 2
    _one_error_line(result.stderr)


def test_debug_before_the_command_reraises(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    tiny_spec["stpes"] = 3
    result = runner.invoke(app, ["--debug", "validate", str(_spec_file(tmp_path, tiny_spec))])
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "SpecError"
    assert result.stderr == ""


# ---------------------------------------------------------------- render


def test_render_writes_grid_images_and_meta(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    tiny_spec["objective"] = {"type": "channel", "layer": "act2", "units": [1, 5]}
    result = _render(runner, tmp_path, tiny_spec)
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert result.stdout == f"{out / 'grid.png'}\n"
    names = sorted(p.name for p in out.iterdir())
    assert "grid.png" in names and "meta.json" in names
    pngs = sorted(n for n in names if n.endswith(".png") and n != "grid.png")
    assert len(pngs) == 2
    for name in pngs:
        with Image.open(out / name) as im:
            im.load()
            assert im.size == (16, 16) and im.mode == "RGB"
    with Image.open(out / "grid.png") as im:
        im.load()
        assert im.width >= 2 * 16 and im.height >= 16
    meta = json.loads((out / "meta.json").read_text())
    assert set(meta["files"]) == {n for n in names if n.endswith(".png")}
    for name, record in meta["files"].items():
        assert record["sha256"] == _sha256(out / name), name
        assert record["bytes"] == (out / name).stat().st_size
        with Image.open(out / name) as im:
            assert (record["width"], record["height"]) == im.size
    assert meta["model"]["name"] == "test_tiny"
    assert meta["steps"] == 4 and len(meta["loss_curve"]) == 4
    assert [img["label"] for img in meta["images"]] == ["act2:1", "act2:5"]
    assert meta["spec"]["objective"][0]["units"] == [1, 5]
    assert meta["output_dir"] == str(out)
    assert "Rendered 2 image(s)" in result.stderr


def test_render_progress_lines_on_stderr(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    result = _render(runner, tmp_path, tiny_spec)
    assert result.exit_code == 0, result.output
    steps = [line for line in result.stderr.splitlines() if line.startswith("step ")]
    assert [STEP_LINE.match(s).groups() for s in steps] == [("1", "4"), ("2", "4"), ("3", "4"), ("4", "4")]
    assert "step" not in result.stdout


def test_render_quiet_prints_no_progress(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    result = _render(runner, tmp_path, tiny_spec, "out", "--quiet")
    assert result.exit_code == 0, result.output
    assert not [line for line in result.stderr.splitlines() if line.startswith("step")]
    assert result.stdout.strip().endswith("grid.png")


def test_render_same_seed_same_bytes(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    tiny_spec["seed"] = 3
    for out in ("a", "b"):
        assert _render(runner, tmp_path, tiny_spec, out, "-q").exit_code == 0
    tiny_spec["seed"] = 4
    assert _render(runner, tmp_path, tiny_spec, "c", "-q").exit_code == 0
    a, b, c = (json.loads((tmp_path / d / "meta.json").read_text())["files"] for d in "abc")
    assert set(a) == set(b) == set(c)
    for name in a:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    image = next(n for n in a if n != "grid.png")
    assert (tmp_path / "a" / image).read_bytes() != (tmp_path / "c" / image).read_bytes()


def test_render_overrides_take_effect(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    spec = _spec_file(tmp_path, tiny_spec)
    out = tmp_path / "over"
    result = runner.invoke(
        app, ["render", str(spec), "--out", str(out), "--steps", "3", "--seed", "11", "--set", "param.size=24", "-q"]
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["steps"] == 3 and len(meta["loss_curve"]) == 3
    assert meta["seed"] == 11
    assert meta["spec"]["param"]["size"] == 24 and meta["spec"]["steps"] == 3 and meta["spec"]["seed"] == 11
    image = next(n for n in meta["files"] if n != "grid.png")
    assert (meta["files"][image]["width"], meta["files"][image]["height"]) == (24, 24)
    with Image.open(out / image) as im:
        assert im.size == (24, 24)
    assert yaml.safe_load(spec.read_text()) == tiny_spec  # the file itself is not changed


def test_render_uses_output_dir_from_the_spec(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    tiny_spec["output"] = {"dir": str(tmp_path / "from_spec"), "grid": False}
    result = runner.invoke(app, ["render", str(_spec_file(tmp_path, tiny_spec)), "-q"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "from_spec"
    assert result.stdout == f"{out / 'meta.json'}\n"  # no grid: the metadata path is printed
    assert not (out / "grid.png").exists()
    assert set(json.loads((out / "meta.json").read_text())["files"]) == {p.name for p in out.glob("*.png")}


def test_render_logit_by_class_name(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    tiny_spec["objective"] = {"type": "logit", "unit": "class3"}
    result = _render(runner, tmp_path, tiny_spec, "out", "-q")
    assert result.exit_code == 0, result.output
    assert "class3" in json.loads((tmp_path / "out" / "meta.json").read_text())["objective"]


# ---------------------------------------------------------------- render: errors


def test_unknown_layer_lists_close_names(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    tiny_spec["objective"]["layer"] = "act22"
    result = _render(runner, tmp_path, tiny_spec)
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert "'act22'" in line and "act2" in line.split("Closest:")[1]
    assert "featviz layers" in line
    assert result.stdout == ""
    assert not (tmp_path / "out" / "meta.json").exists()


def test_unknown_layer_names_the_yaml_field(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    tiny_spec["objective"] = [
        {"type": "channel", "layer": "act2", "unit": 0},
        {"type": "channel", "layer": "act3", "unit": 0},
        {"type": "channel", "layer": "act9", "unit": 0},
    ]
    result = _render(runner, tmp_path, tiny_spec)
    assert result.exit_code == 2
    assert _one_error_line(result.stderr).startswith("Error: objective[2].layer:")


def test_unit_out_of_range(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    tiny_spec["objective"]["unit"] = 999
    result = _render(runner, tmp_path, tiny_spec)
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert line.startswith("Error: objective.unit:")
    assert "999" in line and "16 units" in line and "(0..15)" in line


def test_unit_out_of_range_in_second_term(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    tiny_spec["objective"] = [{"type": "channel", "layer": "act2", "unit": 0},
                              {"type": "channel", "layer": "act3", "unit": 32}]
    result = _render(runner, tmp_path, tiny_spec)
    assert result.exit_code == 2
    assert _one_error_line(result.stderr).startswith("Error: objective[1].unit: unit 32 is out of range")


def test_unknown_model(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    tiny_spec["model"]["name"] = "test_tinyy"
    result = _render(runner, tmp_path, tiny_spec)
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert line.startswith("Error: model.name:") and "'test_tinyy'" in line and "Did you mean test_tiny" in line


def test_unknown_class_name_suggests(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    tiny_spec["objective"] = {"type": "logit", "unit": "clas3"}
    result = _render(runner, tmp_path, tiny_spec)
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert line.startswith("Error: objective.unit:") and "'clas3'" in line and "Did you mean 'class3'" in line


def test_unreadable_checkpoint_names_the_file(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    ckpt = tmp_path / "weights.pt"
    ckpt.write_bytes(random.Random(0).randbytes(512))
    tiny_spec["model"] = {"name": "torchvision/resnet18", "weights": "none", "checkpoint": str(ckpt)}
    tiny_spec["objective"] = {"type": "channel", "layer": "layer1", "unit": 0}
    result = _render(runner, tmp_path, tiny_spec)
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert line.startswith("Error: model.checkpoint:") and str(ckpt) in line


def test_bad_device_from_the_command_line(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    result = _render(runner, tmp_path, tiny_spec, "out", "--device", "gpu")
    assert result.exit_code == 2
    assert _one_error_line(result.stderr).startswith("Error: device: 'gpu' is not a device")


def test_steps_below_one_is_a_usage_error(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    result = _render(runner, tmp_path, tiny_spec, "out", "--steps", "0")
    assert result.exit_code == 2
    assert "--steps" in result.output
    assert not (tmp_path / "out").exists()


def test_output_dir_is_a_file(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    target = tmp_path / "taken"
    target.write_text("keep me")
    spec = _spec_file(tmp_path, tiny_spec)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = runner.invoke(app, ["render", str(spec), "--out", str(target)])
    assert result.exit_code != 0
    line = _one_error_line(result.stderr)
    assert str(target) in line and "not a directory" in line
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temp or partial files beside it
    assert result.stdout == ""


class _NaNAct(nn.Module):
    """An activation that is NaN everywhere (a model that breaks the optimization)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


class _NaNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = _NaNAct()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x)).mean((2, 3))


def _nan_model(spec: Any) -> tuple[nn.Module, ModelInfo]:
    return _NaNNet(), ModelInfo(name="test_nan", input_size=16, mean=(0.5,) * 3, std=(0.25,) * 3)


def test_nan_during_optimization(runner: CliRunner, tmp_path: Path, tiny_spec: dict,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_registry._MODELS, "test_nan", _nan_model)
    tiny_spec["model"] = {"name": "test_nan"}
    tiny_spec["objective"] = {"type": "channel", "layer": "act", "unit": 0}
    result = _render(runner, tmp_path, tiny_spec)
    assert result.exit_code == 1
    line = _one_error_line(result.stderr)
    assert "nan" in line.lower() and "at step 1" in line
    assert "optimizer.lr" in line  # the fix
    assert result.stdout == ""
    assert not (tmp_path / "out" / "meta.json").exists()
    assert not list(tmp_path.glob("out/*.png"))


def test_huge_learning_rate_is_refused_before_rendering(runner: CliRunner, tmp_path: Path, tiny_spec: dict) -> None:
    """lr 1e38 used to overflow float32 inside Adam ('unexpected RuntimeError'); the spec now caps it."""
    tiny_spec["optimizer"] = {"lr": 1e38}
    tiny_spec["param"].update(type="pixel", output="clamp")
    result = _render(runner, tmp_path, tiny_spec, "out", "-q")
    assert result.exit_code == 2
    assert _one_error_line(result.stderr).startswith("Error: optimizer.lr: must be <= ")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- spectrum


def test_spectrum_command(tmp_path: Path) -> None:
    out = tmp_path / "spec.pt"
    res = CliRunner().invoke(app, ["spectrum", str(DATA), "-o", str(out), "--size", "32"])
    assert res.exit_code == 0, res.output
    assert str(out) in res.stdout and out.is_file()
    spec = parse_spec({"objective": {"type": "channel", "layer": "act2", "unit": 0},
                       "param": {"type": "maco", "size": 16, "spectrum": str(out)}})
    assert spec.param.spectrum == str(out)


def test_spectrum_command_errors(tmp_path: Path) -> None:
    procs = [subprocess.Popen([*featviz_cmd(), "spectrum", str(folder)], cwd=ROOT, env=subprocess_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for folder in (tmp_path / "none", tmp_path)]  # both at once: two processes, one wait
    (_, missing), (_, empty) = (p.communicate(timeout=120) for p in procs)
    assert procs[0].returncode == 2 and "not a directory" in missing
    assert procs[1].returncode == 2 and "no images found" in empty


# ---------------------------------------------------------------- layers


TINY_SHAPES = {  # at 32 px: conv1 stride 1, conv2 and conv3 stride 2
    "conv1": ("Conv2d", "8 x 32 x 32"),
    "act1": ("ReLU", "8 x 32 x 32"),
    "conv2": ("Conv2d", "16 x 16 x 16"),
    "act2": ("ReLU", "16 x 16 x 16"),
    "conv3": ("Conv2d", "32 x 8 x 8"),
    "act3": ("ReLU", "32 x 8 x 8"),
    "pool": ("AdaptiveAvgPool2d", "32 x 1 x 1"),
    "fc": ("Linear", "10"),
}


def test_layers_lists_every_layer_with_shape(runner: CliRunner) -> None:
    result = runner.invoke(app, ["layers", "test_tiny"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# test_tiny: input 3x32x32")
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == list(TINY_SHAPES)
    for name, (kind, shape) in TINY_SHAPES.items():
        assert re.fullmatch(rf"{name}\s+{kind}\s+{re.escape(shape)}", rows[name]), rows[name]


def test_layers_size_changes_the_shapes(runner: CliRunner) -> None:
    result = runner.invoke(app, ["layers", "test_tiny", "--size", "64"])
    assert result.exit_code == 0
    assert re.search(r"^act2\s+ReLU\s+16 x 32 x 32$", result.stdout, re.M)


def test_layers_json(runner: CliRunner) -> None:
    result = runner.invoke(app, ["layers", "test_tiny", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == list(TINY_SHAPES)
    by_name = {r["name"]: r for r in rows}
    assert by_name["act2"] == {"name": "act2", "type": "ReLU", "shape": [16, 16, 16]}
    assert by_name["fc"]["shape"] == [10]


def test_layers_unknown_model(runner: CliRunner) -> None:
    result = runner.invoke(app, ["layers", "no_such_model"])
    assert result.exit_code == 2
    line = _one_error_line(result.stderr)
    assert "'no_such_model'" in line and "test_tiny" in line
    assert result.stdout == ""


# ---------------------------------------------------------------- real processes


def test_process_validate_streams_and_exit_codes(tmp_path: Path, tiny_spec: dict) -> None:
    good = _spec_file(tmp_path, tiny_spec, "good.yaml")
    tiny_spec["stpes"] = 3
    bad = _spec_file(tmp_path, tiny_spec, "bad.yaml")
    ok = _run(["validate", str(good)], tmp_path)
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout.startswith("OK: ")
    fail = _run(["validate", str(bad)], tmp_path)
    assert fail.returncode == 2
    assert fail.stdout == ""
    assert _one_error_line(fail.stderr) == "Error: stpes: unknown key. Did you mean 'steps'?"


def test_process_debug_after_the_command_shows_traceback(tmp_path: Path, tiny_spec: dict) -> None:
    tiny_spec["stpes"] = 3
    bad = _spec_file(tmp_path, tiny_spec)
    result = _run(["validate", str(bad), "--debug"], tmp_path)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "SpecError: stpes: unknown key" in result.stderr
    assert "No such option" not in result.stderr
    assert result.stdout == ""


def test_process_missing_config(tmp_path: Path) -> None:
    result = _run(["validate", "nope.yaml"], tmp_path)
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr and result.stdout == ""
    assert "Traceback" not in result.stderr


def test_process_render(tmp_path: Path, tiny_spec: dict) -> None:
    spec = _spec_file(tmp_path, tiny_spec)
    out = tmp_path / "rendered"
    result = _run(["render", str(spec), "--out", str(out)], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{out / 'grid.png'}\n"  # only the result on stdout
    steps = [line for line in result.stderr.splitlines() if line.startswith("step")]
    assert steps and all(STEP_LINE.match(s) for s in steps) and steps[-1].startswith("step 4/4 ")
    assert "\x1b[" not in result.stderr  # plain lines, no terminal control codes
    assert (out / "meta.json").is_file() and (out / "grid.png").is_file()


def test_process_debug_twice(tmp_path: Path, tiny_spec: dict) -> None:
    tiny_spec["stpes"] = 3
    bad = _spec_file(tmp_path, tiny_spec)
    result = _run(["--debug", "validate", str(bad), "--debug"], tmp_path)
    assert "No such option" not in result.stderr
    assert "Traceback" in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_terminal_error_message_is_printed_literally(tmp_path: Path, tiny_spec: dict) -> None:
    import pty

    tiny_spec["device"] = "[/]"
    spec = _spec_file(tmp_path, tiny_spec)
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(featviz_cmd() + ["validate", str(spec)], cwd=tmp_path, env=subprocess_env(),
                              stdout=subprocess.PIPE, stderr=slave, timeout=60)
    finally:
        os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert "Traceback" not in text
    assert proc.returncode == 2
    assert "'[/]' is not a device" in text
