"""The README's SLURM job array, submitted to a real single-node SLURM cluster on localhost.

The script is taken from README.md as written; only the spec and output paths are filled in and
``--gres=gpu:1`` is dropped (the node has no GPU); ``sbatch``'s command line asks for 4 tasks of
one CPU each (command-line options override ``#SBATCH`` lines). One task is requeued in the middle
of a batch, as a preemption does (SLURM sends SIGTERM, then queues the task again); it saves that
batch, exits 143 and finishes its shard on its second run. Then every unit exists once, the same
bytes as a one-process sweep's, and the gallery is complete.

Nothing here waits a fixed time: the preempted task holds its first batch until the SIGTERM arrives
(``FEATVIZ_TEST_HOLD_SHARD`` in ``sweep_child.py``), so the preemption lands in that batch however
slow the machine is, and every step waits for the state it needs, with deadlines of many minutes
(a loaded 2-core machine starts torch slowly), asking again when a SLURM command fails or is slow.
"""
from __future__ import annotations

import os
import re
import shlex
import sys
import time
from pathlib import Path

import pytest

from slurm import Cluster, missing_commands
from sweeps import assert_same_as, check_complete, env, reference, spec_dict, write_spec

README = Path(__file__).resolve().parent.parent / "README.md"
CHILD = Path(__file__).resolve().parent / "sweep_child.py"
TASKS = 4


def readme_job_array() -> str:
    """The job script under '### SLURM job array' in README.md."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"^### SLURM job array\n+```sh\n(.*?)^```", text, re.M | re.S)
    assert m, "README.md has no '### SLURM job array' section with a sh block"
    return m.group(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running one-node cluster, stopped afterwards (also when the test fails)."""
    missing = missing_commands()
    reason = None
    if missing:
        reason = (f"SLURM is not installed here (missing {', '.join(missing)}); 'make slurm' installs Debian's "
                  "slurmctld, slurmd, slurm-client and munge")
    elif os.geteuid() != 0:
        reason = "slurmd must run as root to start jobs; run the tests as root (as CI does)"
    if reason:
        if os.environ.get("FEATVIZ_REQUIRE_SLURM"):
            pytest.fail(reason)
        pytest.skip(reason)
    c = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start(timeout=300)
        yield c
    finally:
        c.stop()


def _wait(what: str, ready, timeout: float, cluster: Cluster) -> None:
    """Poll ``ready()`` until it is true; a SLURM command failing meanwhile counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
            problem = ""
        except RuntimeError as e:
            problem = f" (last: {e})"
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting until {what}{problem}\n" \
                                            f"{cluster.logs()}"
        time.sleep(0.25)


def test_readme_job_array_with_a_preempted_task(cluster: Cluster, tmp_path: Path, tmp_path_factory) -> None:
    script = readme_job_array()
    for needed in ("--requeue", "--signal=B:TERM@", "--open-mode=append", "exec featviz sweep sweep.yaml",
                   '--shard "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT"'):
        assert needed in script, f"the README's job script lost {needed!r}"
    out, work, marks, bin_dir = tmp_path / "atlas", tmp_path / "work", tmp_path / "marks", tmp_path / "bin"
    for d in (work, marks, bin_dir):
        d.mkdir()
    spec = write_spec(tmp_path, spec_dict())
    job_file = work / "atlas.sbatch"
    job_file.write_text(script.replace("sweep.yaml", shlex.quote(str(spec)))
                        .replace("/shared/atlas", shlex.quote(str(out))).replace("--gres=gpu:1 ", ""))
    # 'featviz' on the jobs' PATH: this checkout's CLI, with hooks that mark each batch as it starts and
    # make shard 1's first batch wait for the SIGTERM (same steps, same bytes).
    (bin_dir / "featviz").write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(CHILD))} \"$@\"\n")
    (bin_dir / "featviz").chmod(0o755)
    job_env = cluster.env(**{k: v for k, v in env().items() if k.startswith(("PYTHON", "OMP", "NO_COLOR"))},
                          FEATVIZ_TEST_MARKS=str(marks), FEATVIZ_TEST_HOLD_SHARD=f"1/{TASKS}")
    job_env["PATH"] = os.pathsep.join([str(bin_dir), job_env["PATH"]])

    submitted = cluster.run("sbatch", "--parsable", f"--array=0-{TASKS - 1}", "--cpus-per-task=1", str(job_file),
                            cwd=work, env=job_env)
    job = submitted.stdout.strip().split(";")[0]
    victim = f"{job}_1"  # shard 1 of 4: batches 1 (act2 units 2, 3) and 5 (act3 units 2, 3)
    _wait("task 1 is in its first batch, waiting for the preemption", lambda: (marks / "held").exists(), 900,
          cluster)
    assert cluster.job(victim)["JobState"] == "RUNNING"
    cluster.run("scontrol", "requeue", victim)  # SIGTERM to the task, then back into the queue
    again = marks / "started-act3-2"  # the second run's first batch
    _wait("task 1 is queued again", lambda: again.exists() or cluster.job(victim)["JobState"] == "PENDING", 600,
          cluster)
    # SLURM holds a requeued job about two minutes (its BeginTime); the test does not wait that long. (If it
    # has started again meanwhile, the update fails harmlessly.)
    cluster.run("scontrol", "update", f"JobId={victim}", "StartTime=now", check=False)
    _wait("every task has finished", lambda: not cluster.queued(job), 1200, cluster)

    for task in range(TASKS):
        info = cluster.job(f"{job}_{task}")
        assert (info["JobState"], info["ExitCode"]) == ("COMPLETED", "0:0"), (task, info, cluster.logs())
        assert info["Restarts"] == ("1" if task == 1 else "0")
    log = (work / f"featviz-{job}_1.log").read_text()
    assert "DUE TO JOB REQUEUE" in log, log
    first, second = log.split("Terminated; finished units are saved and the manifest is rebuilt.", 1)
    assert "SIGTERM: stopping; the batch in progress is saved if it can be within 22s of the 30s" in first, \
        (log, f"held {(marks / 'held').read_text().strip()} s")
    assert "2 of 4 unit(s) (shard 1/4) done: 2 rendered now, 0 before" in first, log
    assert "4 of 4 unit(s) (shard 1/4) done: 2 rendered now, 2 before" in second, log
    assert (marks / "started-act2-2").exists() and again.exists()
    for task in (0, 2, 3):
        assert f"4 of 4 unit(s) (shard {task}/4) done: 4 rendered now, 0 before" in (
            work / f"featviz-{job}_{task}.log").read_text()
    check_complete(out)
    assert_same_as(out, reference(tmp_path_factory))
