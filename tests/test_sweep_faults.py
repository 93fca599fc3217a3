"""Faults against an uninterrupted reference: SIGKILL, SIGTERM (one process, and with workers), a disk
that fills up during a write, and shards whose rebuilds overlap."""
from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from featviz_cli import sweep as sw
from featviz_cli.cli import app

from sweeps import (
    TOTAL,
    assert_same_as,
    check_complete,
    done_count,
    env,
    reference,
    spec_dict,
    start,
    wait_for,
    write_spec,
)

CHILD = [sys.executable, str(Path(__file__).resolve().parent / "sweep_child.py")]


def _hooked(spec: Path, out: Path, *extra: str, new_session: bool = False, **hooks: Any) -> subprocess.Popen[str]:
    """``featviz sweep`` as a child process with the test hooks of ``sweep_child.py``."""
    e = env()
    if "grace_env" in hooks:
        e[sw.GRACE_ENV] = str(hooks.pop("grace_env"))
    e.update({f"FEATVIZ_TEST_{k.upper()}": str(v) for k, v in hooks.items()})
    return subprocess.Popen(CHILD + ["sweep", str(spec), "--out", str(out), *extra], env=e, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=new_session)


def _finish(spec: Path, out: Path, ref: Path) -> None:
    """Rerun to the end; the directory then holds exactly the uninterrupted sweep."""
    final = start(spec, out, "--quiet")
    _, stderr = final.communicate(timeout=180)
    assert final.returncode == 0, stderr
    check_complete(out)
    assert_same_as(out, ref)


def _consistent(out: Path) -> dict[str, Any]:
    """The manifest lists every planned unit once, as done exactly when its files are all there."""
    manifest = json.loads((out / "manifest.json").read_text())
    keys = [(e["layer"], e["unit"]) for e in manifest["units"]]
    assert len(keys) == len(set(keys)) == manifest["total"] == TOTAL
    for e in manifest["units"]:
        json_there = (out / e["meta"]).is_file()
        assert e["status"] == ("done" if json_there else "pending"), e
    assert manifest["done"] == done_count(out) and manifest["pending"] == TOTAL - manifest["done"]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    return manifest


def _group(pgid: int, wait_s: float = 5.0) -> list[str]:
    """The command lines of the processes still in process group ``pgid`` after up to ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        left = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    left.append((stat.parent / "cmdline").read_text().replace("\0", " "))
            except (OSError, IndexError, ValueError):
                continue
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def test_sigkill_at_any_moment_then_rerun_completes(tmp_path: Path, tmp_path_factory) -> None:
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
    assert_same_as(out, reference(tmp_path_factory))


def test_sigterm_saves_the_batch_in_progress_when_it_can_then_exits_143(tmp_path: Path, tmp_path_factory) -> None:
    spec, out, marks = write_spec(tmp_path, spec_dict()), tmp_path / "out", tmp_path / "marks"
    marks.mkdir()
    proc = _hooked(spec, out, "--grace", "60", marks=marks, step_delay=0.25)
    wait_for(proc, lambda: (marks / "started-act2-2").exists())  # batch 1 (units 2, 3) is being optimized
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=90)
    waited = time.monotonic() - t0
    assert proc.returncode == sw.EXIT_TERMINATED == 143, stderr
    assert waited < 60 * sw.stop.BATCH_SHARE
    assert "SIGTERM: stopping; the batch in progress is saved if it can be within 45s of the 60s grace period" in stderr
    assert "4 of 16 unit(s) done: 4 rendered now, 0 before" in stderr and "Abandoned" not in stderr
    assert "Terminated; finished units are saved and the manifest is rebuilt." in stderr
    assert _consistent(out)["done"] == 4
    _finish(spec, out, reference(tmp_path_factory))


def test_sigterm_abandons_a_batch_that_cannot_be_saved_in_the_grace_period(tmp_path: Path, tmp_path_factory) -> None:
    spec, out, marks = write_spec(tmp_path, spec_dict()), tmp_path / "out", tmp_path / "marks"
    marks.mkdir()
    # A batch takes 8 s, more than 3/4 of the grace period, given here by the environment.
    proc = _hooked(spec, out, marks=marks, step_delay=2.0, grace_env="6")
    wait_for(proc, lambda: (marks / "started-act2-2").exists())
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    waited = time.monotonic() - t0
    assert proc.returncode == 143, stderr
    assert waited < 6, stderr
    assert "within 4s of the 6s grace period" in stderr
    assert "Abandoned 1 batch(es) in progress" in stderr and "2 of 16 unit(s) done: 2 rendered now" in stderr
    assert _consistent(out)["done"] == 2  # nothing of the abandoned batch was written
    _finish(spec, out, reference(tmp_path_factory))


def test_sigterm_to_the_process_group_stops_the_workers_too(tmp_path: Path, tmp_path_factory) -> None:
    """As SLURM does at preemption: every process of the job gets SIGTERM at once."""
    spec, out, marks = write_spec(tmp_path, spec_dict()), tmp_path / "out", tmp_path / "marks"
    marks.mkdir()
    proc = _hooked(spec, out, "--devices", "cpu,cpu", "--grace", "12", new_session=True, marks=marks,
                   step_delay=2.5)  # batches of 10 s: more than 3/4 of the grace period
    wait_for(proc, lambda: len(list(marks.iterdir())) >= 2, timeout=180)  # both workers in a batch
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    waited = time.monotonic() - t0
    assert proc.returncode == 143, stderr
    assert waited < 12, stderr
    assert "Abandoned 2 batch(es) in progress" in stderr
    left = _group(proc.pid)
    assert not left, f"left behind: {left}"
    _consistent(out)
    _finish(spec, out, reference(tmp_path_factory))


def test_a_write_that_fails_halfway_leaves_no_partial_file(tmp_path: Path, tmp_path_factory, monkeypatch) -> None:
    """Disk full during a unit's PNG: one clean error, no partial file, and the rerun completes."""
    spec, out = write_spec(tmp_path, spec_dict()), tmp_path / "out"
    real, failed = os.fdopen, []

    class HalfFull:
        """A file whose write stores half the bytes, then fails as a full disk does."""

        def __init__(self, f: Any) -> None:
            self.f = f

        def __enter__(self) -> "HalfFull":
            return self

        def __exit__(self, *exc: Any) -> None:
            self.f.close()

        def write(self, data: bytes) -> int:
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            failed.append(len(data))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name: str) -> Any:
            return getattr(self.f, name)

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        f = real(fd, *args, **kwargs)
        target = os.readlink(f"/proc/self/fd/{fd}")
        return HalfFull(f) if re.search(r"/units/act3/\.00005\.png\.\w+\.tmp$", target) else f

    monkeypatch.setattr(os, "fdopen", fdopen)
    result = CliRunner().invoke(app, ["sweep", str(spec), "--out", str(out), "--quiet"])
    monkeypatch.undo()
    assert len(failed) == 1, "the write of units/act3/00005.png was not intercepted"
    assert result.exit_code == 1, result.output
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "00005.png" in errors[0] and "No space left on device" in errors[0], result.stderr
    assert "Traceback" not in result.output
    assert not (out / "units/act3/00005.png").exists() and not (out / "units/act3/00005.json").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert (out / "units/act3/00004.json").is_file()  # the batch's first unit was saved whole
    _finish(spec, out, reference(tmp_path_factory))


def test_shards_with_overlapping_rebuilds_end_complete(tmp_path: Path, tmp_path_factory) -> None:
    """Four shard processes into one directory whose final rebuilds all want the lock at once (each
    holding it 1 s), and rebuilds in this process while units are written: the rebuilds take turns and
    the last leaves the one-process sweep's files."""
    spec, out, log = write_spec(tmp_path, spec_dict()), tmp_path / "out", tmp_path / "rebuilds.log"
    procs = [_hooked(spec, out, "--shard", f"{i}/4", "--quiet", rebuild_delay=1.0, rebuild_log=log,
                     rebuild_barrier=4)
             for i in range(4)]
    stop, rebuilt = threading.Event(), []

    def rebuild_meanwhile() -> None:
        while not stop.is_set():
            if (out / "sweep.json").is_file():
                rebuilt.append(sw.rebuild(out).manifest["done"])
            time.sleep(0.05)

    thread = threading.Thread(target=rebuild_meanwhile)
    thread.start()
    try:
        results = [p.communicate(timeout=240) for p in procs]
    finally:
        stop.set()
        thread.join()
    assert [p.returncode for p in procs] == [0] * 4, results
    assert rebuilt and min(rebuilt) < TOTAL  # some rebuilds ran while units were still being written
    times: dict[int, dict[str, float]] = {}
    for kind, pid, t in (ln.split() for ln in log.read_text().splitlines()):
        times.setdefault(int(pid), {})[kind] = float(t)
    assert len(times) == 4 and all(set(t) == {"arrive", "want", "got", "free"} for t in times.values())
    spans = sorted((t["got"], t["free"]) for t in times.values())
    assert all(free <= got for (_, free), (got, _) in zip(spans, spans[1:])), f"the lock was held twice: {spans}"
    waited = [(a, b) for a, ta in times.items() for b, tb in times.items()
              if a != b and tb["want"] < ta["free"] and ta["got"] < tb["got"]]
    assert len(waited) >= 3, f"the rebuilds did not overlap: {times}"
    check_complete(out)
    assert_same_as(out, reference(tmp_path_factory))
