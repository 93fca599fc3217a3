"""Sweeps: unit expansion, batches and shards, resume, crash safety (SIGKILL, Ctrl-C), shards and workers."""
from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

import featviz_cli
from featviz_cli import sweep as sw
from featviz_cli.cli import app
from featviz_cli.config import json_schema, load_spec, parse_spec
from featviz_cli.errors import LayerError, SpecError
from featviz_cli.outputs import png_bytes, sha256_file, to_uint8

from conftest import featviz_cmd

# 16 units: 0..7 of act2 and of act3, in 8 batches of 2; contact sheets and layer pages of 4.
SWEEP = {
    "model": {"name": "test_tiny"},
    "objective": {"type": "channel", "layer": ["act2", "act3"], "units": "0:8"},
    "param": {"size": 16},
    "steps": 4,
    "thresholds": [2],
    "device": "cpu",
    "sweep": {"batch": 2, "page_size": 4},
}
TOTAL = 16


def _spec(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(SWEEP)
    for key, value in changes.items():
        data[key] = value
    return data


def _term(**fields: Any) -> dict[str, Any]:
    return _spec(objective={"type": "channel", "layer": "act2", **fields})


def _plan(tiny_model, data: dict[str, Any]) -> sw.Plan:
    model, info = tiny_model
    return sw.make_plan(parse_spec(data), model, info)


# ---------------------------------------------------------------- the spec and the plan


def test_units_all_ranges_and_lists_expand(tiny_model) -> None:
    assert _plan(tiny_model, _term(units="all")).layers[0].units == tuple(range(16))
    assert _plan(tiny_model, _term(units="2:6")).layers[0].units == (2, 3, 4, 5)
    assert _plan(tiny_model, _term(units="12:")).layers[0].units == (12, 13, 14, 15)
    assert _plan(tiny_model, _term(units="::5")).layers[0].units == (0, 5, 10, 15)
    assert _plan(tiny_model, _term(units=[7, 1, 3])).layers[0].units == (7, 1, 3)
    assert _plan(tiny_model, _term(unit=9)).layers[0].units == (9,)
    plan = _plan(tiny_model, _spec())
    assert [(lp.layer, lp.channels, len(lp.units)) for lp in plan.layers] == [("act2", 16, 8), ("act3", 32, 8)]
    assert plan.total == TOTAL and len(plan.batches) == 8
    assert [b.units for b in plan.batches[3:5]] == [(6, 7), (0, 1)] and plan.batches[4].layer == "act3"


def test_logit_units_all_are_the_classes_with_names(tiny_model) -> None:
    plan = _plan(tiny_model, _spec(objective={"type": "logit", "units": "all"}))
    (lp,) = plan.layers
    assert lp.units == tuple(range(10)) and lp.label(3) == "3 class3" and lp.dir == "output"


@pytest.mark.parametrize(("units", "message"), [
    ("0:64", "objective.units: range '0:64' goes past the 16 units of layer 'act2' (0..15)."),
    ([1, 99], "objective.units: unit 99 is out of range for layer 'act2' with 16 units (0..15)."),
])
def test_units_out_of_range_name_the_field(tiny_model, units: Any, message: str) -> None:
    with pytest.raises(LayerError) as err:
        _plan(tiny_model, _term(units=units))
    assert str(err.value) == message


def test_unit_out_of_range_in_a_layer_list_names_the_field(tiny_model) -> None:
    data = _spec(objective={"type": "channel", "layer": ["act3", "act2"], "units": "20:24"})
    with pytest.raises(LayerError, match=r"^objective\.units: range '20:24' goes past the 16 units of layer 'act2'"):
        _plan(tiny_model, data)


@pytest.mark.parametrize(("objective", "field", "text"), [
    ({"type": "channel", "layer": "act2", "units": "abc"}, "objective.units", "is not 'all', a range"),
    ({"type": "channel", "layer": "act2", "units": "6:2"}, "objective.units", "is empty"),
    ({"type": "deepdream", "layer": ["act2", "act3"]}, "objective.layer", "type 'deepdream' has none"),
    ({"type": "channel", "layer": ["act2", "act2"], "units": "all"}, "objective.layer", "listed twice"),
])
def test_bad_sweep_fields_are_refused_before_loading(objective: dict, field: str, text: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(_spec(objective=objective))
    assert err.value.field == field and text in str(err.value)


def test_ranges_in_yaml_stay_text(tmp_path: Path, tiny_model) -> None:
    """YAML 1.1 would read 8:12 as the base-60 integer 492."""
    path = tmp_path / "s.yaml"
    path.write_text("model: {name: test_tiny}\nobjective: {type: channel, layer: act2, units: 8:12}\n")
    spec = load_spec(path)
    assert spec.objective[0].units == "8:12"
    model, info = tiny_model
    assert sw.make_plan(spec, model, info).layers[0].units == (8, 9, 10, 11)


def test_shipped_sweep_example_sweeps(tmp_path: Path) -> None:
    path = Path(featviz_cli.__file__).parent.parent / "configs" / "sweeps" / "efficientnet_blocks.yaml"
    tiny = ["steps=2", "param.size=16", "model.input_size=48", "objective.units=0:2", "sweep.batch=2", "device=cpu"]
    report = sw.run_sweep(load_spec(path, tiny), tmp_path / "out")
    assert report.total == len(report.rendered) == 4
    assert [lay["layer"] for lay in check_complete(tmp_path / "out")["layers"]] == ["_blocks.5", "_blocks.10"]


def test_sweep_term_rules(tiny_model) -> None:
    two = _spec(objective=[{"type": "channel", "layer": "act2", "units": "all"},
                           {"type": "channel", "layer": "act3", "units": "0:16"}])
    with pytest.raises(SpecError, match=r"^objective\[1\]\.units: a sweep varies one term"):
        _plan(tiny_model, two)
    with pytest.raises(SpecError, match=r"^param\.batch: "):
        _plan(tiny_model, _spec(param={"size": 16, "batch": 4}, objective={"type": "channel", "layer": "act2",
                                                                           "units": [0, 1, 2, 3]}))
    extra = _spec(objective=[{"type": "channel", "layer": "act2", "units": "all"},
                             {"type": "deepdream", "layer": "act1", "weight": 0.1}])
    assert _plan(tiny_model, extra).term == 0


def test_render_refuses_a_sweep_spec_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_term(units="all")))
    result = CliRunner().invoke(app, ["render", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "objective.units: layer lists, 'all' and ranges are for sweeps: run 'featviz sweep SPEC'" in result.output


def test_sweep_settings_are_in_the_schema() -> None:
    props = json_schema()["properties"]["sweep"]["properties"]
    assert set(props) == {"batch", "page_size"}
    assert {"type": "integer", "minimum": 1, "maximum": 4096} in props["batch"]["anyOf"]
    with pytest.raises(SpecError, match=r"^sweep\.batch: must be >= 1"):
        parse_spec(_spec(sweep={"batch": 0}))


def test_batch_size_defaults_by_device_or_to_the_recorded_run(tiny_model) -> None:
    model, info = tiny_model
    spec = parse_spec(_spec(sweep={}))
    assert sw.make_plan(spec, model, info, "cpu").batch_size == 16
    assert sw.make_plan(spec, model, info, "cuda").batch_size == 64
    assert sw.make_plan(spec, model, info, "cuda", recorded_batch=16).batch_size == 16


@pytest.mark.parametrize("count", [1, 2, 3, 5, 13])
def test_shards_are_disjoint_and_complete(tiny_model, count: int) -> None:
    plan = _plan(tiny_model, _spec())
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


# ---------------------------------------------------------------- in-process runs


def _files(out: Path) -> dict[str, int]:
    """Relative path -> mtime_ns of every file under units/."""
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in (out / "units").rglob("*") if p.is_file()}


def check_complete(out: Path) -> dict[str, Any]:
    """Every planned unit present exactly once, images decode, no temp file, manifest agrees with the files."""
    record = json.loads((out / "sweep.json").read_text())
    expected = set()
    for lay in record["layers"]:
        for u in lay["units"]:
            meta = json.loads((out / "units" / lay["dir"] / f"{u:05d}.json").read_text())
            assert (meta["layer"], meta["unit"], meta["spec_hash"]) == (lay["layer"], u, record["spec_hash"])
            for rel, rec in meta["files"].items():
                with Image.open(out / rel) as im:
                    im.load()
                    assert im.size == (rec["width"], rec["height"])
                assert sha256_file(out / rel) == rec["sha256"]
                expected.add(rel)
            expected.add(f"units/{lay['dir']}/{u:05d}.json")
    assert set(_files(out)) == expected  # nothing twice, nothing partial, nothing else
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec_hash"] == record["spec_hash"]
    assert manifest["total"] == manifest["done"] == record["total"] == len(manifest["units"])
    keys = [(e["layer"], e["unit"]) for e in manifest["units"]]
    assert len(set(keys)) == len(keys) == record["total"]
    for e in manifest["units"]:
        assert e["status"] == "done" and sha256_file(out / e["image"]) == e["sha256"]
    return manifest


def test_sweep_writes_units_sheets_manifest_and_gallery(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = sw.run_sweep(parse_spec(_spec()), out)
    assert (report.total, report.done_before, len(report.rendered)) == (TOTAL, 0, TOTAL)
    manifest = check_complete(out)
    assert [lay["sheets"] for lay in manifest["layers"]] == [
        ["sheets/act2/sheet_000.png", "sheets/act2/sheet_001.png"],
        ["sheets/act3/sheet_000.png", "sheets/act3/sheet_001.png"]]
    with Image.open(out / "sheets/act3/sheet_001.png") as im:
        assert im.width > 2 * 16 and im.height > 2 * 16  # 4 labelled cells of 16 px
    first = manifest["units"][0]
    assert first["snapshots"] == ["units/act2/00000_step00002.png"] and first["objective"] is not None
    assert report.index == out.resolve() / "index.html" and report.index.is_file()


def test_a_sweep_batch_renders_exactly_what_render_gives(tmp_path: Path) -> None:
    """A unit's image depends only on the spec: the same as 'featviz render' of its batch."""
    out = tmp_path / "out"
    data = _spec(objective={"type": "channel", "layer": "act3", "units": "4:8"}, thresholds=[], sweep={"batch": 4})
    sw.run_sweep(parse_spec(data), out, build_gallery=False)
    plain = _spec(objective={"type": "channel", "layer": "act3", "units": [4, 5, 6, 7]}, thresholds=[])
    plain.pop("sweep")
    result = featviz_cli.render(plain)
    images = to_uint8(result.images.permute(0, 2, 3, 1))
    for i, unit in enumerate(range(4, 8)):
        assert (out / f"units/act3/{unit:05d}.png").read_bytes() == png_bytes(images[i])


def test_rerun_skips_done_units_and_redoes_missing_ones(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = parse_spec(_spec())
    sw.run_sweep(spec, out)
    before = _files(out)
    again = sw.run_sweep(spec, out)
    assert again.rendered == [] and again.done_before == TOTAL and _files(out) == before
    lost = out / "units/act3/00005.png"
    image = lost.read_bytes()
    lost.unlink()  # an image gone: the unit is not done any more
    (out / "units/act2/00002.json").unlink()  # a unit whose JSON was never written
    (out / "units/act2/.00002.png.0123456789ab.tmp").write_bytes(b"partial")  # a write killed midway
    third = sw.run_sweep(spec, out)
    assert sorted(third.rendered) == [("act2", 2), ("act3", 5)]
    assert lost.read_bytes() == image  # same spec, same batch: the same bytes
    after = _files(out)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed <= {"units/act2/00002.png", "units/act2/00002.json", "units/act2/00002_step00002.png",
                       "units/act3/00005.png", "units/act3/00005.json", "units/act3/00005_step00002.png"}
    check_complete(out)


def test_changed_spec_is_refused_unless_new_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = sw.run_sweep(parse_spec(_spec(objective={"type": "channel", "layer": "act2", "units": "0:4"})), out)
    changed = parse_spec(_spec(objective={"type": "channel", "layer": "act2", "units": "0:4"}, steps=7))
    with pytest.raises(SpecError) as err:
        sw.run_sweep(changed, out)
    assert "already holds a sweep of a different spec (steps: 4 -> 7)" in str(err.value)
    assert "--new-run" in str(err.value)
    report = sw.run_sweep(changed, out, new_run=True)
    assert report.done_before == 0 and len(report.rendered) == 4
    archived = out / "archive" / first.spec_hash[:12]
    assert json.loads((archived / "sweep.json").read_text())["spec_hash"] == first.spec_hash
    assert (archived / "units/act2/00003.png").is_file()
    assert json.loads((out / "sweep.json").read_text())["spec_hash"] == report.spec_hash != first.spec_hash
    check_complete(out)


def test_device_and_output_changes_do_not_change_the_run(tmp_path: Path) -> None:
    data = _spec(objective={"type": "channel", "layer": "act2", "units": "0:4"})
    out = tmp_path / "out"
    sw.run_sweep(parse_spec(data), out, build_gallery=False)
    other = copy.deepcopy(data)
    other.update(device="auto", name="renamed", output={"dir": "elsewhere"}, sweep={"batch": 2, "page_size": 3})
    assert sw.run_sweep(parse_spec(other), out).rendered == []


# ---------------------------------------------------------------- the command line and processes


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    env["NO_COLOR"] = "1"
    env["OMP_NUM_THREADS"] = "1"  # tiny tensors: one thread each is faster on a shared 2-core machine
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(featviz_cli.__file__).parent.parent),
                                                      env.get("PYTHONPATH")]))
    return env


def _write_spec(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _start(spec: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(featviz_cmd() + ["sweep", str(spec), "--out", str(out), *extra], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _done(out: Path) -> int:
    return len(list((out / "units").glob("*/*.json"))) if (out / "units").is_dir() else 0


def _wait_for(proc: subprocess.Popen[str], ready: Any, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the sweep ended before it could be stopped: {proc.communicate()}"
        assert time.monotonic() < deadline, "the sweep made no progress"
        time.sleep(0.02)


def test_cli_sweep_prints_progress_and_the_gallery_path(tmp_path: Path) -> None:
    spec = _write_spec(tmp_path, _spec(objective={"type": "channel", "layer": "act2", "units": "0:8"}))
    result = CliRunner().invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "o"), "--steps", "4"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str((tmp_path / "o" / "index.html").resolve())
    lines = result.stderr.splitlines()
    assert [ln for ln in lines if re.fullmatch(r"units (\d+)/8 \(\d+%\) elapsed \S+( ETA \S+)?", ln)] == [
        ln for ln in lines if ln.startswith("units ")]
    assert re.search(r"^units 8/8 \(100%\) elapsed \S+ ETA 0s$", result.stderr, re.M)
    assert "8 of 8 unit(s) done: 8 rendered now, 0 before" in result.stderr


def test_sigkill_at_any_moment_then_rerun_completes(tmp_path: Path) -> None:
    spec, out = _write_spec(tmp_path, _spec()), tmp_path / "out"
    kills = [lambda: (out / "sweep.json").exists(), lambda: _done(out) >= 1, lambda: _done(out) >= 7]
    for ready in kills:
        proc = _start(spec, out)
        _wait_for(proc, ready)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
    assert 7 <= _done(out) < TOTAL
    final = _start(spec, out)
    stdout, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr
    rendered = int(re.search(r"(\d+) rendered now, (\d+) before", stderr).group(1))
    assert rendered == TOTAL - int(re.search(r"(\d+) before", stderr).group(1))
    check_complete(out)


def test_ctrl_c_stops_after_the_batch_with_exit_130_then_resumes(tmp_path: Path) -> None:
    spec, out = _write_spec(tmp_path, _spec()), tmp_path / "out"
    proc = _start(spec, out)
    _wait_for(proc, lambda: _done(out) >= 1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Stopping after the current batch is saved" in stderr and "Rerun the same command" in stderr
    done = _done(out)
    assert 2 <= done < TOTAL and done % 2 == 0  # whole batches of 2 were saved
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["done"] == done and manifest["pending"] == TOTAL - done
    final = _start(spec, out, "--quiet")
    _, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr
    check_complete(out)


def test_two_shards_as_processes_share_one_directory(tmp_path: Path) -> None:
    spec, out = _write_spec(tmp_path, _spec()), tmp_path / "out"
    procs = [_start(spec, out, "--shard", f"{i}/2", "--quiet") for i in range(2)]
    results = [p.communicate(timeout=150) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    counts = [re.search(r"(\d+) of (\d+) unit\(s\) \(shard \d/2\) done: (\d+) rendered now", err).groups()
              for _, err in results]
    assert [int(c[1]) for c in counts] == [TOTAL // 2] * 2 and sum(int(c[2]) for c in counts) == TOTAL
    for meta in (out / "units").glob("*/*.json"):
        m = json.loads(meta.read_text())
        assert m["shard"] == f"{m['batch']['index'] % 2}/2"
    check_complete(out)


def test_two_cpu_workers_share_the_batches(tmp_path: Path) -> None:
    spec, out = _write_spec(tmp_path, _spec()), tmp_path / "out"
    proc = _start(spec, out, "--devices", "cpu,cpu", "--quiet")
    _, stderr = proc.communicate(timeout=150)
    assert proc.returncode == 0, stderr
    assert f"{TOTAL} of {TOTAL} unit(s) done: {TOTAL} rendered now" in stderr and "on cpu, cpu" in stderr
    workers = {json.loads(p.read_text())["worker"] for p in (out / "units").glob("*/*.json")}
    assert workers == {0, 1}
    check_complete(out)
