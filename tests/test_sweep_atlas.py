"""featviz_cli/sweep/atlas.py and ``featviz atlas``: the layers of a kind, the spec it writes (which
``featviz sweep`` resumes and shards as the same sweep), the estimate before it starts (calibrated, or from
recorded times), and with photos the dataset examples and faithfulness of every unit."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from featviz_cli import sweep as sw
from featviz_cli.cli import app
from featviz_cli.config import ModelSpec, parse_spec
from featviz_cli.errors import LayerError
from featviz_cli.models import load_model
from featviz_cli.sweep.atlas import DEFAULT_TECHNIQUES, Estimate, block_layers, duration, estimate, run_atlas

from conftest import DATA

TINY = ["--units", "0:2", "--steps", "2", "--device", "cpu", "--set", "param.size=16", "-q"]


def test_the_layers_of_a_kind_are_the_blocks_else_every_map() -> None:
    lite, info = load_model(ModelSpec(name="efficientnet_lite0"))
    assert block_layers(lite, info) == [f"_blocks.{i}" for i in range(16)]
    tiny, tiny_info = load_model(ModelSpec(name="test_tiny"))
    assert block_layers(tiny, tiny_info) == ["conv1", "act1", "conv2", "act2", "conv3", "act3"]  # pool: 1x1
    assert block_layers(tiny, tiny_info, "ReLU") == ["act1", "act2", "act3"]
    with pytest.raises(LayerError, match="--kind: no layer of type 'Block'.*Conv2d"):
        block_layers(tiny, tiny_info, "Block")


def test_durations_read_as_people_say_them() -> None:
    assert [duration(s) for s in (0.2, 40, 89, 600, 3599, 3600 * 3 + 300)] == [
        "1 s", "40 s", "89 s", "10 min", "1 h 00 min", "3 h 05 min"]


def test_an_estimate_first_then_a_sweep_that_featviz_sweep_resumes_and_shards(tmp_path: Path) -> None:
    out = tmp_path / "atlas"
    runner = CliRunner()
    dry = runner.invoke(app, ["atlas", "test_tiny", "--out", str(out), "--layers", "act2,act3", *TINY, "--estimate"])
    assert dry.exit_code == 0, dry.stderr
    assert dry.stdout.strip() == str(out / "atlas.yaml") and not (out / "sweep.json").exists()
    assert "atlas of test_tiny: 2 layer(s) (act2 .. act3), 12 render(s) (channel, neuron, diverse \u00d73)" in dry.stderr
    assert "12 render(s) in 6 batch(es) to do: about" in dry.stderr and "calibrated on cpu" in dry.stderr
    data = yaml.safe_load((out / "atlas.yaml").read_text())
    assert data["sweep"]["techniques"] == DEFAULT_TECHNIQUES and data["objective"]["layer"] == ["act2", "act3"]
    # half of it through featviz sweep with the atlas's own spec: the same sweep
    half = runner.invoke(app, ["sweep", str(out / "atlas.yaml"), "--out", str(out), "--shard", "0/2", "-q"])
    assert half.exit_code == 0, half.stderr
    record = json.loads((out / "sweep.json").read_text())
    spec = parse_spec(data)
    model, info = load_model(spec.model)
    plan = sw.make_plan(spec, model, info)
    pending = sw.resume_check(out, plan, plan.batches).pending
    est = estimate(plan, pending, out, model, info, "cpu")
    assert est.how.startswith("from the recorded times of 6 render(s)") and est.units == 6 and est.batches == 3
    unit_times = [json.loads(p.read_text())["time_s"] for p in (out / "units").rglob("*.json")]
    assert est.seconds == pytest.approx(sum(unit_times) / len(unit_times) * 6, rel=0.6)
    full = runner.invoke(app, ["atlas", "test_tiny", "--out", str(out), "--layers", "act2,act3", *TINY])
    assert full.exit_code == 0, full.stderr
    assert "from the recorded times" in full.stderr and "12 of 12 render(s) done" in full.stderr
    assert json.loads((out / "sweep.json").read_text())["spec_hash"] == record["spec_hash"]
    assert json.loads((out / "manifest.json").read_text())["done"] == 12
    assert Estimate(0, 0, 0, "x").text().startswith("0 render(s)")


@pytest.mark.parametrize(("args", "line"), [
    (["--layers", "act2,nope"], "Error: --layers: no layer 'nope' in this model."),
    (["--layers", "act2", "--units", "0:999"], "Error: --units: range '0:999' goes past the 16 units of layer 'act2'"),
    (["--kind", "Block"], "Error: --kind: no layer of type 'Block'"),
])
def test_bad_options_are_one_line_naming_the_option_and_leave_nothing(tmp_path: Path, args: list[str],
                                                                       line: str) -> None:
    out = tmp_path / "atlas"
    result = CliRunner().invoke(app, ["atlas", "test_tiny", "--out", str(out), "--steps", "2", *args])
    assert result.exit_code == 2 and result.stderr.startswith(line), result.stderr
    assert len(result.stderr.splitlines()) == 1 and not out.exists()


def test_with_photos_every_unit_gets_examples_and_faithfulness(tmp_path: Path) -> None:
    out = tmp_path / "atlas"
    report = run_atlas("test_tiny", out, layers=["act2"], units="0:2", steps=2, device="cpu",
                       overrides=["param.size=16", "sweep.techniques=[channel, neuron]"], images=str(DATA), k=2)
    assert report.sweep.done == 4 and report.examples is not None
    assert report.faithfulness.measured == 4 and report.faithfulness.files == ["faithfulness/channel/act2.json",
                                                                               "faithfulness/neuron/act2.json"]
    doc = json.loads((out / "examples/act2/examples.json").read_text())
    assert doc["k"] == 2 and "bottom" in doc["units"]["0"] and doc["stats"]["units"]["0"]["count"] == 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert all("ratio" in e["faithfulness"] for e in manifest["units"])
