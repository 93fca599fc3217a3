"""A single-node SLURM cluster on localhost for tests: munged, slurmctld and slurmd under one directory.

Everything (munge key and socket, ``slurm.conf``, state, spool, logs, pid files) lives under the
directory given, the daemons listen on free private ports and run in the foreground as children
of the test process, and ``stop`` cancels what is left and ends them. Debian's ``slurmctld slurmd
slurm-client munge`` packages provide the commands (``make slurm`` installs them).
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo", "scancel")


def missing_commands() -> list[str]:
    """The SLURM and munge commands not on PATH (nor in /usr/sbin)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [c for c in COMMANDS if shutil.which(c, path=path) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """One node, ``localhost``, with ``cpus`` CPUs, in one partition; ``SLURM_CONF`` is ``env()``'s."""

    def __init__(self, root: Path, cpus: int | None = None, kill_wait: int = 30) -> None:
        self.root = Path(root)
        self.cpus = cpus or os.cpu_count() or 1
        self.kill_wait = kill_wait
        self.procs: list[subprocess.Popen[bytes]] = []
        self.conf = self.root / "slurm.conf"
        self.socket = self.root / "munge.socket"
        self.path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for SLURM commands (and, through ``sbatch``, for jobs)."""
        return {**os.environ, "PATH": self.path, "SLURM_CONF": str(self.conf), **extra}

    def run(self, *args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a SLURM command against this cluster (RuntimeError if it fails or hangs, with ``check``)."""
        kwargs.setdefault("env", self.env())
        try:
            proc = subprocess.run(list(args), capture_output=True, text=True, timeout=120, **kwargs)
        except subprocess.TimeoutExpired:
            if check:
                raise RuntimeError(f"{' '.join(args)} did not answer within 120 s") from None
            return subprocess.CompletedProcess(list(args), -1, "", "timed out")
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def query(self, *args: str, patience: float = 120.0) -> str:
        """The output of a read-only SLURM command, asked again while it fails (a busy slurmctld can time
        out an answer): RuntimeError only if it still fails after ``patience`` seconds."""
        deadline = time.monotonic() + patience
        while True:
            try:
                return self.run(*args).stdout
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(1.0)

    def _write_config(self) -> None:
        user = self._user()
        for d in ("state", "spool"):
            (self.root / d).mkdir(mode=0o700)
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.conf.write_text("\n".join([
            "ClusterName=featviz-test",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.socket}",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.root / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "MpiDefault=none",
            "ReturnToService=2",
            f"KillWait={self.kill_wait}",
            "MinJobAge=600",
            f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN",
            "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))

    @staticmethod
    def _user() -> str:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name

    def _daemon(self, *args: str, log: str) -> None:
        out = open(self.root / log, "wb")  # noqa: SIM115 - closed with the process in stop()
        self.procs.append(subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT, env=self.env(),
                                           start_new_session=True))
        out.close()

    def start(self, timeout: float = 60.0) -> None:
        """Start munged, slurmctld and slurmd; return once the node is idle (RuntimeError with the logs if not)."""
        self._write_config()
        r = self.root
        self._daemon("munged", "-F", "-f", f"--key-file={r / 'munge.key'}", f"--socket={self.socket}",
                     f"--pid-file={r / 'munged.pid'}", f"--log-file={r / 'munged.log'}",
                     f"--seed-file={r / 'munged.seed'}", log="munged.out")
        self._wait(lambda: self.socket.exists(), timeout, "munged did not create its socket")
        self._daemon("slurmctld", "-D", "-i", log="slurmctld.out")
        self._daemon("slurmd", "-D", "-N", "localhost", log="slurmd.out")
        self._wait(lambda: self.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip() == "idle", timeout,
                   "the node did not become idle")

    def _wait(self, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p.args[0] for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"{what} ({'exited: ' + ', '.join(dead) if dead else 'timed out'}): {self.logs()}")
            time.sleep(0.2)

    def logs(self, tail: int = 15) -> str:
        """The last lines of every daemon log, for failure messages."""
        parts = []
        for p in sorted(self.root.glob("*.out")) + sorted(self.root.glob("*.log")):
            lines = p.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {p.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` of one job (or array task, ``123_4``) as a dict of its fields."""
        text = self.query("scontrol", "-o", "show", "job", job_id)
        return dict(re.findall(r"(\w+)=(\S*)", text))

    def queued(self, job_id: str) -> list[str]:
        """The array tasks of a job still in the queue (pending, running or completing); a failed squeue
        is asked again, never read as an empty queue."""
        text = self.query("squeue", "-h", "-r", "-j", job_id, "-o", "%i %T")
        return [line for line in text.splitlines() if line.strip()]

    def stop(self) -> None:
        """Cancel every job, then end the daemons (each by its own process)."""
        if self.conf.exists() and self.procs:
            self.run("scancel", f"--user={self._user()}", check=False)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.run("squeue", "-h", check=False).stdout.strip():
                time.sleep(0.5)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.procs.clear()
