"""featviz_cli/sweep/units.py: per-unit files, and what a rerun counts as done (resume and repair)."""
from __future__ import annotations

from pathlib import Path

from featviz_cli import sweep as sw
from featviz_cli.config import parse_spec

from sweeps import TOTAL, check_complete, spec_dict, unit_mtimes


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
