"""featviz_cli/sweep/manifest.py: the manifest, contact sheets and gallery rebuilt from the unit files."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from featviz_cli import sweep as sw
from featviz_cli.config import parse_spec

from sweeps import TOTAL, check_complete, spec_dict


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
