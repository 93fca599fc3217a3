"""featviz_cli/sweep/workers.py: worker processes share a sweep's batches (SIGTERM: test_sweep_faults.py)."""
from __future__ import annotations

import json
from pathlib import Path

from sweeps import TOTAL, check_complete, spec_dict, start, write_spec


def test_two_cpu_workers_share_the_batches(tmp_path: Path) -> None:
    spec, out = write_spec(tmp_path, spec_dict()), tmp_path / "out"
    proc = start(spec, out, "--devices", "cpu,cpu", "--quiet")
    _, stderr = proc.communicate(timeout=150)
    assert proc.returncode == 0, stderr
    assert f"{TOTAL} of {TOTAL} unit(s) done: {TOTAL} rendered now" in stderr and "on cpu, cpu" in stderr
    workers = {json.loads(p.read_text())["worker"] for p in (out / "units").glob("*/*.json")}
    assert workers == {0, 1}
    check_complete(out)
