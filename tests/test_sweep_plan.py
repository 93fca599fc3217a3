"""featviz_cli/sweep/plan.py: the sweep term, unit expansion, batches, shards and worker devices."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from featviz_cli import sweep as sw
from featviz_cli.cli import app
from featviz_cli.config import json_schema, load_spec, parse_spec
from featviz_cli.errors import LayerError, SpecError

from sweeps import TOTAL, plan_of, spec_dict, term


def test_units_all_ranges_and_lists_expand(tiny_model) -> None:
    assert plan_of(tiny_model, term(units="all")).layers[0].units == tuple(range(16))
    assert plan_of(tiny_model, term(units="2:6")).layers[0].units == (2, 3, 4, 5)
    assert plan_of(tiny_model, term(units="12:")).layers[0].units == (12, 13, 14, 15)
    assert plan_of(tiny_model, term(units="::5")).layers[0].units == (0, 5, 10, 15)
    assert plan_of(tiny_model, term(units=[7, 1, 3])).layers[0].units == (7, 1, 3)
    assert plan_of(tiny_model, term(unit=9)).layers[0].units == (9,)
    plan = plan_of(tiny_model, spec_dict())
    assert [(lp.layer, lp.channels, len(lp.units)) for lp in plan.layers] == [("act2", 16, 8), ("act3", 32, 8)]
    assert plan.total == TOTAL and len(plan.batches) == 8
    assert [b.units for b in plan.batches[3:5]] == [(6, 7), (0, 1)] and plan.batches[4].layer == "act3"


def test_logit_units_all_are_the_classes_with_names(tiny_model) -> None:
    plan = plan_of(tiny_model, spec_dict(objective={"type": "logit", "units": "all"}))
    (lp,) = plan.layers
    assert lp.units == tuple(range(10)) and lp.label(3) == "3 class3" and lp.dir == "output"


@pytest.mark.parametrize(("units", "message"), [
    ("0:64", "objective.units: range '0:64' goes past the 16 units of layer 'act2' (0..15)."),
    ([1, 99], "objective.units: unit 99 is out of range for layer 'act2' with 16 units (0..15)."),
])
def test_units_out_of_range_name_the_field(tiny_model, units: Any, message: str) -> None:
    with pytest.raises(LayerError) as err:
        plan_of(tiny_model, term(units=units))
    assert str(err.value) == message


def test_unit_out_of_range_in_a_layer_list_names_the_field(tiny_model) -> None:
    data = spec_dict(objective={"type": "channel", "layer": ["act3", "act2"], "units": "20:24"})
    with pytest.raises(LayerError, match=r"^objective\.units: range '20:24' goes past the 16 units of layer 'act2'"):
        plan_of(tiny_model, data)


@pytest.mark.parametrize(("objective", "field", "text"), [
    ({"type": "channel", "layer": "act2", "units": "abc"}, "objective.units", "is not 'all', a range"),
    ({"type": "channel", "layer": "act2", "units": "6:2"}, "objective.units", "is empty"),
    ({"type": "deepdream", "layer": ["act2", "act3"]}, "objective.layer", "type 'deepdream' has none"),
    ({"type": "channel", "layer": ["act2", "act2"], "units": "all"}, "objective.layer", "listed twice"),
])
def test_bad_sweep_fields_are_refused_before_loading(objective: dict, field: str, text: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(spec_dict(objective=objective))
    assert err.value.field == field and text in str(err.value)


def test_ranges_in_yaml_stay_text(tmp_path: Path, tiny_model) -> None:
    """YAML 1.1 would read 8:12 as the base-60 integer 492."""
    path = tmp_path / "s.yaml"
    path.write_text("model: {name: test_tiny}\nobjective: {type: channel, layer: act2, units: 8:12}\n")
    spec = load_spec(path)
    assert spec.objective[0].units == "8:12"
    model, info = tiny_model
    assert sw.make_plan(spec, model, info).layers[0].units == (8, 9, 10, 11)


def test_sweep_term_rules(tiny_model) -> None:
    two = spec_dict(objective=[{"type": "channel", "layer": "act2", "units": "all"},
                               {"type": "channel", "layer": "act3", "units": "0:16"}])
    with pytest.raises(SpecError, match=r"^objective\[1\]\.units: a sweep varies one term"):
        plan_of(tiny_model, two)
    with pytest.raises(SpecError, match=r"^param\.batch: "):
        plan_of(tiny_model, spec_dict(param={"size": 16, "batch": 4}, objective={"type": "channel", "layer": "act2",
                                                                                "units": [0, 1, 2, 3]}))
    extra = spec_dict(objective=[{"type": "channel", "layer": "act2", "units": "all"},
                                 {"type": "deepdream", "layer": "act1", "weight": 0.1}])
    assert plan_of(tiny_model, extra).term == 0


def test_render_refuses_a_sweep_spec_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(term(units="all")))
    result = CliRunner().invoke(app, ["render", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "objective.units: layer lists, 'all' and ranges are for sweeps: run 'featviz sweep SPEC'" in result.output


def test_sweep_settings_are_in_the_schema() -> None:
    props = json_schema()["properties"]["sweep"]["properties"]
    assert set(props) == {"batch", "page_size", "techniques"}
    assert {"type": "integer", "minimum": 1, "maximum": 4096} in props["batch"]["anyOf"]
    with pytest.raises(SpecError, match=r"^sweep\.batch: must be >= 1"):
        parse_spec(spec_dict(sweep={"batch": 0}))


def test_batch_size_defaults_by_device_or_to_the_recorded_run(tiny_model) -> None:
    model, info = tiny_model
    spec = parse_spec(spec_dict(sweep={}))
    assert sw.make_plan(spec, model, info, "cpu").batch_size == 16
    assert sw.make_plan(spec, model, info, "cuda").batch_size == 64
    assert sw.make_plan(spec, model, info, "cuda", recorded_batch=16).batch_size == 16


@pytest.mark.parametrize("count", [1, 2, 3, 5, 13])
def test_shards_are_disjoint_and_complete(tiny_model, count: int) -> None:
    plan = plan_of(tiny_model, spec_dict())
    parts = [sw.shard_batches(plan.batches, i, count) for i in range(count)]
    units = [(b.layer, u) for part in parts for b in part for u in b.units]
    assert len(units) == len(set(units)) == plan.total
    assert parts == [sw.shard_batches(plan.batches, i, count) for i in range(count)]  # deterministic


def test_parse_shard_and_devices() -> None:
    assert sw.parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "1", "-1/2", "a/b"):
        with pytest.raises(SpecError, match=r"^--shard: "):
            sw.parse_shard(bad)
    assert sw.parse_devices("cpu, cpu", "auto") == ["cpu", "cpu"]
    assert sw.parse_devices(None, "cpu") == ["cpu"]
    with pytest.raises(SpecError, match=r"^--devices: 'gpu' is not a device"):
        sw.parse_devices("cpu,gpu", "cpu")


@pytest.mark.parametrize(("data", "recorded"), [
    ({"model": {"name": "test_tiny"}, "objective": {"type": "channel", "layer": ["act1", "act2"], "units": "all"},
      "param": {"size": 16, "decay_power": 1.0}, "optimizer": {"lr": 0.05}, "steps": 3, "device": "cpu"},
     "a3b14ff79fcc29cb6fe6983e5f2f35058d73ebab49814f949bee33c693363869"),
    ({"model": {"name": "efficientnet_lite0"}, "objective": {"type": "channel", "layer": "_blocks.5", "units": "0:8"},
      "param": {"decay_power": 1.0}, "optimizer": {"lr": 0.05}, "steps": 512},
     "6eff1c0f24b559951d80813520237fbeab90462fb6b048a0730c48161e74ff32"),
])
def test_spec_hashes_recorded_before_the_redesign_still_match(data: dict[str, Any], recorded: str) -> None:
    """Output directories made by earlier versions resume: these hashes were computed by featviz before
    the redesign (and before the fields in LATER_FIELDS existed) for the same specs. The defaults of that
    time (decay_power 1.0, lr 0.05) are written out: a spec that relied on them renders other images now."""
    from featviz_cli.models import load_model

    spec = parse_spec(data)
    model, info = load_model(spec.model)
    assert sw.make_plan(spec, model, info, "cpu").spec_hash == recorded
    for later in ({"views": 2}, {"transforms": [{"type": "crops", "centres": "uniform"}]}):
        changed = parse_spec({**data, **later})  # a later field away from its default is part of the hash
        assert sw.make_plan(changed, model, info, "cpu").spec_hash != recorded, later


def _dictionary(tmp_path: Path, rows: int = 5, width: int = 32, seed: int = 0) -> str:
    import numpy as np

    path = tmp_path / f"dict-{rows}x{width}-{seed}.npy"
    np.save(path, np.random.RandomState(seed).randn(rows, width).astype(np.float32))
    return str(path)


def test_a_dictionary_sweep_plans_the_rows_as_units(tiny_model, tmp_path: Path) -> None:
    path = _dictionary(tmp_path)
    plan = plan_of(tiny_model, spec_dict(objective={"type": "direction", "layer": "act3", "vector_file": path,
                                                    "units": "all"}))
    (lp,) = plan.layers
    assert (lp.layer, lp.dir, lp.channels, lp.units) == ("act3", "act3", 5, (0, 1, 2, 3, 4))
    assert [b.units for b in plan.batches] == [(0, 1), (2, 3), (4,)]
    ranged = plan_of(tiny_model, spec_dict(objective={"type": "direction", "layer": "act3", "vector_file": path,
                                                      "units": "1:3"}))
    assert ranged.layers[0].units == (1, 2)
    with pytest.raises(LayerError, match=r"^objective\.units: range '0:9' goes past the 5 units of the rows of "):
        plan_of(tiny_model, spec_dict(objective={"type": "direction", "layer": "act3", "vector_file": path,
                                                 "units": "0:9"}))


def test_a_dictionary_sweep_hashes_the_matrix_content(tiny_model, tmp_path: Path) -> None:
    import numpy as np

    path = _dictionary(tmp_path)
    data = spec_dict(objective={"type": "direction", "layer": "act3", "vector_file": path, "units": "all"})
    before = plan_of(tiny_model, data).spec_hash
    np.save(path, np.load(path) * 2)  # same file name, other directions
    assert plan_of(tiny_model, data).spec_hash != before
    doubled = plan_of(tiny_model, data).spec_hash
    moved = tmp_path / "elsewhere" / "renamed.npy"
    moved.parent.mkdir()
    Path(path).rename(moved)  # the same matrix under another name: the same run
    assert plan_of(tiny_model, {**data, "objective": {**data["objective"], "vector_file": str(moved)}}).spec_hash == doubled
    channel = plan_of(tiny_model, term(units="0:4")).hashed
    assert "vector_file_sha256" not in channel and "vector_key" not in channel["objective"][0]


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"vector_file": None, "random_seed": 1}, "objective.unit",
     "type 'direction' takes no unit (direction: rows of a vector_file matrix)"),
    ({"layer": "act2"}, "objective.vector_file", "rows have 32 values but layer 'act2' has 16 channels"),
])
def test_a_dictionary_sweep_refuses_what_does_not_fit(tiny_model, tmp_path: Path, change: dict, field: str,
                                                      message: str) -> None:
    objective = {"type": "direction", "layer": "act3", "vector_file": _dictionary(tmp_path), "units": "all", **change}
    with pytest.raises(SpecError) as err:
        plan_of(tiny_model, spec_dict(objective={k: v for k, v in objective.items() if v is not None}))
    assert err.value.field == field and message in str(err.value)
