"""featviz_cli/sweep/stop.py: Ctrl-C and SIGTERM, the grace period and when a batch is abandoned
(whole processes stopped by SIGTERM: test_sweep_faults.py and test_sweep_slurm.py)."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from featviz_cli import sweep as sw
from featviz_cli.cli import app
from featviz_cli.sweep.stop import BATCH_SHARE, watch

from sweeps import TOTAL, check_complete, done_count, spec_dict, start, wait_for, write_spec


def test_terminate_sets_one_deadline_within_the_grace_period() -> None:
    flag = sw.StopFlag(grace_s=40, notice=None)
    assert not flag() and flag.deadline is None and flag.exit_code == 130
    flag.terminate(now=1000.0)
    assert flag() and flag.deadline == 1000.0 + 40 * BATCH_SHARE == 1030.0 and flag.exit_code == 143
    flag.terminate(now=2000.0)  # SLURM may signal again: the first deadline stands
    assert flag.deadline == 1030.0


def test_ctrl_c_then_sigterm_exits_143_and_notices_wait_for_flush() -> None:
    said: list[str] = []
    flag = sw.StopFlag(grace_s=8, notice=said.append)
    flag.interrupt()
    assert said == [] and flag.exit_code == 130  # a handler only records
    flag.terminate(now=0.0)
    assert flag() and flag.exit_code == 143 and flag.deadline == 6.0
    assert said == ["Stopping after the current batch is saved (Ctrl-C again to stop now).",
                    "SIGTERM: stopping; the batch in progress is saved if it can be within 6s of the 8s grace "
                    "period (--grace), else abandoned."]


def test_a_batch_is_abandoned_only_when_it_would_end_after_the_deadline(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    deadline: list[float | None] = [None]
    seen = []
    report = watch(lambda d, t, v: seen.append(d), lambda: deadline[0])
    clock[0] = 110.0
    report(10, 100, 0.0)  # 1 s a step, no deadline: goes on
    deadline[0] = 200.0
    report(10, 100, 0.0)  # 90 steps left, 90 s: ends at 200, just in time
    clock[0] = 111.0
    with pytest.raises(sw.BatchAbandoned):
        report(10, 100, 0.0)  # now it would end at 210
    assert seen == [10, 10, 10]  # progress is reported before the check
    late = watch(None, lambda: 50.0)
    with pytest.raises(sw.BatchAbandoned):
        late(100, 100, 0.0)  # past the deadline even with nothing left to do


def test_interrupt_guard_catches_sigterm_and_restores_the_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    said: list[str] = []
    with sw.interrupt_guard(said.append, grace_s=4) as flag:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        assert flag.requested and flag.signal == "SIGTERM" and 0 < flag.deadline - time.time() <= 3
        assert said == []
    assert said and said[0].startswith("SIGTERM: stopping")  # flushed on the way out
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_the_grace_option_says_what_the_constants_are() -> None:
    text = " ".join(CliRunner().invoke(app, ["sweep", "--help"]).stdout.split())
    assert f"(default {sw.DEFAULT_GRACE_S:g})" in text
    assert "within 3/4 of them" in text and BATCH_SHARE == 3 / 4
    assert "exit code is 143" in text and sw.EXIT_TERMINATED == 143 and "FEATVIZ_GRACE" in text
    assert sw.GRACE_ENV == "FEATVIZ_GRACE"


def test_ctrl_c_stops_after_the_batch_with_exit_130_then_resumes(tmp_path: Path) -> None:
    spec, out = write_spec(tmp_path, spec_dict()), tmp_path / "out"
    proc = start(spec, out)
    wait_for(proc, lambda: done_count(out) >= 1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Stopping after the current batch is saved" in stderr and "Rerun the same command" in stderr
    done = done_count(out)
    assert 2 <= done < TOTAL and done % 2 == 0  # whole batches of 2 were saved
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["done"] == done and manifest["pending"] == TOTAL - done
    final = start(spec, out, "--quiet")
    _, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr
    check_complete(out)
