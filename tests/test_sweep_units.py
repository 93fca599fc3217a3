"""featviz_cli/sweep/units.py: per-unit files, and what a rerun counts as done (resume and repair)."""
from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from featviz_cli import sweep as sw
from featviz_cli.cli import app
from featviz_cli.config import parse_spec

from sweeps import TOTAL, assert_same_as, check_complete, reference, spec_dict, unit_mtimes, write_spec


def test_rerun_skips_done_units_and_redoes_missing_ones(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = parse_spec(spec_dict())
    sw.run_sweep(spec, out)
    before = unit_mtimes(out)
    again = sw.run_sweep(spec, out)
    assert again.rendered == [] and again.done_before == TOTAL and unit_mtimes(out) == before
    lost = out / "units/act3/00005.png"
    image = lost.read_bytes()
    lost.unlink()  # an image gone: the unit is not done any more
    (out / "units/act2/00002.json").unlink()  # a unit whose JSON was never written
    (out / "units/act2/.00002.png.0123456789ab.tmp").write_bytes(b"partial")  # a write killed midway
    third = sw.run_sweep(spec, out)
    assert sorted(third.rendered) == [("act2", 2), ("act3", 5)]
    assert lost.read_bytes() == image  # same spec, same batch: the same bytes
    after = unit_mtimes(out)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed <= {"units/act2/00002.png", "units/act2/00002.json", "units/act2/00002_step00002.png",
                       "units/act3/00005.png", "units/act3/00005.json", "units/act3/00005_step00002.png"}
    check_complete(out)


def _flip_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4] = bytes(b ^ 0xFF for b in data[mid : mid + 4])
    path.write_bytes(bytes(data))


def test_rerun_repairs_exactly_the_damaged_units(tmp_path: Path, tmp_path_factory) -> None:
    """Each kind of damage is found, and the rerun gives the uninterrupted sweep's files back."""
    out = tmp_path / "out"
    spec = parse_spec(spec_dict())
    sw.run_sweep(spec, out)
    before = unit_mtimes(out)
    u = out / "units"
    _flip_middle(u / "act2/00001.png")  # same size, other bytes
    size = (u / "act2/00004.png").stat().st_size
    (u / "act2/00004.png").write_bytes((u / "act2/00004.png").read_bytes()[: size // 2])  # truncated
    (u / "act3/00002.png").unlink()  # deleted image
    _flip_middle(u / "act2/00006_step00002.png")  # a damaged snapshot
    (u / "act3/00005.json").unlink()  # deleted record: the unit was never finished
    (u / "act3/00007.json").write_text('{"spec_hash": "')  # garbled record
    damaged = {("act2", 1), ("act2", 4), ("act3", 2), ("act2", 6), ("act3", 5), ("act3", 7)}

    gallery = CliRunner().invoke(app, ["gallery", str(out)])
    assert gallery.exit_code == 0, gallery.output
    assert "10 of 16 unit(s) done, 1 pending, 5 corrupt." in gallery.stderr
    entries = {(e["layer"], e["unit"]): e for e in json.loads((out / "manifest.json").read_text())["units"]}
    assert {k for k, e in entries.items() if e["status"] != "done"} == damaged
    assert entries[("act2", 1)]["problem"] == "units/act2/00001.png does not match its recorded sha256"
    assert entries[("act2", 4)]["problem"] == f"units/act2/00004.png has {size // 2} bytes, {size} recorded"
    assert entries[("act3", 2)]["problem"] == "units/act3/00002.png is missing"
    assert entries[("act2", 6)]["problem"] == "units/act2/00006_step00002.png does not match its recorded sha256"
    assert entries[("act3", 5)]["status"] == "pending" and "problem" not in entries[("act3", 5)]
    assert entries[("act3", 7)]["problem"] == "units/act3/00007.json is not a unit record"

    spec_file = write_spec(tmp_path, spec_dict())
    result = CliRunner().invoke(app, ["sweep", str(spec_file), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "Re-rendering 5 damaged unit(s): units/act2/00001.png does not match its recorded sha256;" in result.stderr
    assert "16 of 16 unit(s) done: 6 rendered now, 10 before" in result.stderr
    manifest = check_complete(out)
    assert (manifest["done"], manifest["pending"], manifest["corrupt"]) == (16, 0, 0)
    after = unit_mtimes(out)
    rewritten = {k for k in after if after[k] != before.get(k)}
    assert {(k[6:10], int(k[11:16])) for k in rewritten} == damaged  # exactly those units' files
    assert_same_as(out, reference(tmp_path_factory))


def test_summary_agrees_with_the_manifest_after_a_same_size_corruption(tmp_path: Path) -> None:
    """The reported fault: a flipped byte in a finished sweep was skipped and the rerun said all done."""
    out = tmp_path / "out"
    spec = parse_spec(spec_dict())
    sw.run_sweep(spec, out)
    _flip_middle(out / "units/act3/00003.png")
    report = sw.run_sweep(spec, out, build_gallery=False)
    assert (report.done_before, report.rendered) == (TOTAL - 1, [("act3", 3)])
    _flip_middle(out / "units/act3/00003.png")
    report = sw.run_sweep(spec, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert report.done == manifest["done"] == TOTAL and report.rendered == [("act3", 3)]
