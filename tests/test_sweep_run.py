"""featviz_cli/sweep/run.py: a shard's run, through the library and the command line, and shards as processes."""
from __future__ import annotations

import json
import re

import torch
from pathlib import Path

from typer.testing import CliRunner

import featviz_cli
from featviz_cli import sweep as sw
from featviz_cli.cli import app
from featviz_cli.config import load_spec

from sweeps import TOTAL, check_complete, spec_dict, start, write_spec


def test_shipped_sweep_example_sweeps(tmp_path: Path) -> None:
    path = Path(featviz_cli.__file__).parent.parent / "configs" / "sweeps" / "efficientnet_blocks.yaml"
    tiny = ["steps=2", "param.size=16", "model.input_size=48", "objective.units=0:2", "sweep.batch=2", "device=cpu"]
    report = sw.run_sweep(load_spec(path, tiny), tmp_path / "out")
    assert report.total == len(report.rendered) == 4
    assert [lay["layer"] for lay in check_complete(tmp_path / "out")["layers"]] == ["_blocks.5", "_blocks.10"]


def test_cli_sweep_prints_progress_and_the_gallery_path(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, spec_dict(objective={"type": "channel", "layer": "act2", "units": "0:8"}))
    result = CliRunner().invoke(app, ["sweep", str(spec), "--out", str(tmp_path / "o"), "--steps", "4"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str((tmp_path / "o" / "index.html").resolve())
    lines = result.stderr.splitlines()
    assert [ln for ln in lines if re.fullmatch(r"units (\d+)/8 \(\d+%\) elapsed \S+( ETA \S+)?", ln)] == [
        ln for ln in lines if ln.startswith("units ")]
    assert re.search(r"^units 8/8 \(100%\) elapsed \S+ ETA 0s$", result.stderr, re.M)
    assert "8 of 8 unit(s) done: 8 rendered now, 0 before" in result.stderr


def test_two_shards_as_processes_share_one_directory(tmp_path: Path) -> None:
    spec, out = write_spec(tmp_path, spec_dict()), tmp_path / "out"
    procs = [start(spec, out, "--shard", f"{i}/2", "--quiet") for i in range(2)]
    results = [p.communicate(timeout=150) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    counts = [re.search(r"(\d+) of (\d+) unit\(s\) \(shard \d/2\) done: (\d+) rendered now", err).groups()
              for _, err in results]
    assert [int(c[1]) for c in counts] == [TOTAL // 2] * 2 and sum(int(c[2]) for c in counts) == TOTAL
    for meta in (out / "units").glob("*/*.json"):
        m = json.loads(meta.read_text())
        assert m["shard"] == f"{m['batch']['index'] % 2}/2"
    check_complete(out)


def test_a_dictionary_sweep_recovers_a_planted_direction(tmp_path: Path, tiny_model) -> None:
    """Every row of an N x C matrix is a unit; the planted row's render drives the planted direction most."""
    from directions_helpers import PLANTED, acts_of, dictionary_spec, images_of, planted_dictionary, square_photos

    from featviz_cli.config import parse_spec

    d = planted_dictionary(tiny_model, square_photos(tmp_path / "photos"), tmp_path / "dict.npy")
    report = sw.run_sweep(parse_spec(dictionary_spec(tmp_path / "dict.npy")), tmp_path / "out")
    assert report.total == len(report.rendered) == 6
    record = check_complete(tmp_path / "out")
    assert record["layers"][0]["units"] == record["layers"][0]["channels"] == 6  # the rows are the units
    renders = images_of([tmp_path / "out" / "units" / "act3" / f"{u:05d}.png" for u in range(6)])
    along = torch.einsum("bchw,c->b", acts_of(tiny_model, renders), d)
    assert int(along.argmax()) == PLANTED
    assert along[PLANTED] > 1.3 * torch.cat([along[:PLANTED], along[PLANTED + 1:]]).max()
    meta = json.loads((tmp_path / "out" / "units" / "act3" / f"{PLANTED:05d}.json").read_text())
    assert meta["type"] == "direction" and meta["label"] == str(PLANTED)
    again = sw.run_sweep(parse_spec(dictionary_spec(tmp_path / "dict.npy")), tmp_path / "out")
    assert again.rendered == [] and again.done_before == 6  # resumed: every row's files verified


def test_a_dictionary_sweep_is_shardable_and_resumes_damaged_rows(tmp_path: Path) -> None:
    import numpy as np

    from featviz_cli.config import parse_spec

    np.save(tmp_path / "dict.npy", np.random.RandomState(0).randn(4, 32).astype(np.float32))
    spec = parse_spec({"model": {"name": "test_tiny"}, "steps": 2, "param": {"size": 16}, "device": "cpu",
                       "objective": {"type": "direction", "layer": "act3", "vector_file": str(tmp_path / "dict.npy"),
                                     "units": "1:4"}, "sweep": {"batch": 1}})
    first = sw.run_sweep(spec, tmp_path / "out", shard=(0, 2))
    second = sw.run_sweep(spec, tmp_path / "out", shard=(1, 2))
    assert sorted(first.rendered + second.rendered) == [("act3", 1), ("act3", 2), ("act3", 3)]
    png = tmp_path / "out" / "units" / "act3" / "00002.png"
    png.write_bytes(png.read_bytes()[:-7])
    repaired = sw.run_sweep(spec, tmp_path / "out")
    assert repaired.rendered == [("act3", 2)] and len(repaired.damaged) == 1
    check_complete(tmp_path / "out")
