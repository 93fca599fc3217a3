"""featviz_cli/sweep/record.py: ``sweep.json``, a changed spec refused or archived, what the hash covers."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from featviz_cli import sweep as sw
from featviz_cli.config import parse_spec
from featviz_cli.errors import SpecError

from sweeps import check_complete, spec_dict


def test_changed_spec_is_refused_unless_new_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = sw.run_sweep(parse_spec(spec_dict(objective={"type": "channel", "layer": "act2", "units": "0:4"})), out)
    changed = parse_spec(spec_dict(objective={"type": "channel", "layer": "act2", "units": "0:4"}, steps=7))
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
    data = spec_dict(objective={"type": "channel", "layer": "act2", "units": "0:4"})
    out = tmp_path / "out"
    sw.run_sweep(parse_spec(data), out, build_gallery=False)
    other = copy.deepcopy(data)
    other.update(device="auto", name="renamed", output={"dir": "elsewhere"}, sweep={"batch": 2, "page_size": 3})
    assert sw.run_sweep(parse_spec(other), out).rendered == []
