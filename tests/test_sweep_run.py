"""featviz_cli/sweep/run.py: a shard's run, through the library and the command line, and shards as processes."""
from __future__ import annotations

import json
import re
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
