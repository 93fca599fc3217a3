"""featviz_cli/sweep/manifest.py: the manifest, contact sheets and gallery rebuilt from the unit files."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from featviz_cli import sweep as sw
from featviz_cli.config import parse_spec
from featviz_cli.outputs import sha256_file

from sweeps import TOTAL, assert_same_as, check_complete, reference, spec_dict


def test_sweep_writes_units_sheets_manifest_and_gallery(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = sw.run_sweep(parse_spec(spec_dict()), out)
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


def test_unchanged_sheets_are_kept_and_changed_or_damaged_ones_drawn_again(tmp_path: Path, tmp_path_factory) -> None:
    out = tmp_path / "out"
    spec = parse_spec(spec_dict())
    sw.run_sweep(spec, out)
    sheets = sorted((out / "sheets").rglob("*.png"))
    before = {p: p.stat().st_mtime_ns for p in sheets}
    sw.rebuild(out)
    assert {p: p.stat().st_mtime_ns for p in sheets} == before  # nothing to draw again
    damaged = out / "sheets/act2/sheet_001.png"
    damaged.write_bytes(damaged.read_bytes()[:100])
    (out / "units/act3/00001.png").unlink()  # sheet_000 of act3 now shows a grey cell
    manifest = sw.rebuild(out).manifest
    grey = out / "sheets/act3/sheet_000.png"
    changed = {p for p in sheets if p.stat().st_mtime_ns != before[p]}
    assert changed == {damaged, grey}
    assert manifest["layers"][1]["sheet_keys"][0]["sha256"] == sha256_file(grey)
    sw.run_sweep(spec, out)
    assert_same_as(out, reference(tmp_path_factory))  # every sheet as an uninterrupted sweep draws it
