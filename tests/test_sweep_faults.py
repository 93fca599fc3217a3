"""Faults against an uninterrupted reference: SIGKILL, SIGTERM, a disk that fills up, shards racing."""
from __future__ import annotations

import re
import signal
from pathlib import Path

from sweeps import TOTAL, check_complete, done_count, spec_dict, start, wait_for, write_spec


def test_sigkill_at_any_moment_then_rerun_completes(tmp_path: Path) -> None:
    spec, out = write_spec(tmp_path, spec_dict()), tmp_path / "out"
    kills = [lambda: (out / "sweep.json").exists(), lambda: done_count(out) >= 1, lambda: done_count(out) >= 7]
    for ready in kills:
        proc = start(spec, out)
        wait_for(proc, ready)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
    assert 7 <= done_count(out) < TOTAL
    final = start(spec, out)
    stdout, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr
    rendered = int(re.search(r"(\d+) rendered now, (\d+) before", stderr).group(1))
    assert rendered == TOTAL - int(re.search(r"(\d+) before", stderr).group(1))
    check_complete(out)
