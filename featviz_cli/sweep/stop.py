"""Stopping a sweep: Ctrl-C, and SIGTERM with a grace period.

SLURM (at preemption, at the time limit, or earlier with ``--signal``) and Kubernetes (pod
deletion, node drain, preemption) send SIGTERM, then SIGKILL a grace period later. On the
first SIGTERM a sweep takes no new batch; the batch in progress goes on only while it is
projected to be saved within ``BATCH_SHARE`` of the grace period, else it is abandoned (the
rest of the grace period is for rebuilding the manifest); the process then exits with
``EXIT_TERMINATED``. The first Ctrl-C stops after the batch in progress, the second at once.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Callable, Iterator

#: Seconds between SIGTERM and the SIGKILL that follows it: Kubernetes' default
#: terminationGracePeriodSeconds and SLURM's default KillWait are both 30 s.
DEFAULT_GRACE_S = 30.0
GRACE_ENV = "FEATVIZ_GRACE"  # the environment variable behind --grace
#: The share of the grace period the batch in progress may use; the rest is for the rebuild.
BATCH_SHARE = 0.75
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as a shell reports it
EXIT_TERMINATED = 143  # SIGTERM: 128 + SIGTERM, what schedulers expect of a terminated task

Progress = Callable[[int, int, float], None]


class BatchAbandoned(Exception):
    """The batch in progress was given up after a SIGTERM: it could not be saved within the grace period."""


class StopFlag:
    """When a sweep should stop: after the batch in progress (``requested``) and, after a SIGTERM,
    by when that batch must be saved (``deadline``, a ``time.time()``).

    Signal handlers only record; the notices they leave are printed by ``flush`` from the
    sweep's own loop (printing inside a handler can collide with a print in progress).
    """

    def __init__(self, grace_s: float = DEFAULT_GRACE_S, notice: Callable[[str], None] | None = None) -> None:
        self.grace_s = grace_s
        self.requested = False
        self.signal: str | None = None
        self.deadline: float | None = None
        self._notice = notice
        self._pending: list[str] = []

    def __call__(self) -> bool:
        self.flush()
        return self.requested

    def interrupt(self) -> None:
        """The first Ctrl-C: stop after the batch in progress is saved."""
        self.requested = True
        self.signal = self.signal or "SIGINT"
        self._pending.append("Stopping after the current batch is saved (Ctrl-C again to stop now).")

    def terminate(self, now: float | None = None) -> None:
        """A SIGTERM: stop; the batch in progress must be saved within the batch share of the grace period."""
        if self.deadline is not None:
            return  # SLURM may signal again before SIGKILL: the first deadline stands
        budget = self.grace_s * BATCH_SHARE
        self.requested, self.signal = True, "SIGTERM"
        self.deadline = (time.time() if now is None else now) + budget
        self._pending.append(f"SIGTERM: stopping; the batch in progress is saved if it can be within {budget:.0f}s "
                             f"of the {self.grace_s:g}s grace period (--grace), else abandoned.")

    def flush(self) -> None:
        """Print the notices the signal handlers left."""
        while self._pending:
            message = self._pending.pop(0)
            if self._notice is not None:
                self._notice(message)

    @property
    def exit_code(self) -> int:
        """The exit code of a sweep this flag stopped: 143 after a SIGTERM, else 130."""
        return EXIT_TERMINATED if self.signal == "SIGTERM" else EXIT_INTERRUPTED

    def watch(self, progress: Progress | None) -> Progress:
        """``progress`` for one batch that prints pending notices and abandons the batch past the deadline."""

        def report(done: int, total: int, value: float) -> None:
            self.flush()
            if progress is not None:
                progress(done, total, value)

        return watch(report, lambda: self.deadline)


def watch(progress: Progress | None, deadline: Callable[[], float | None]) -> Progress:
    """``progress`` for one batch that raises ``BatchAbandoned`` as soon as the batch, at the pace of its
    steps so far, would end after ``deadline()`` (None: no deadline)."""
    start = time.time()

    def report(done: int, total: int, value: float) -> None:
        if progress is not None:
            progress(done, total, value)
        limit = deadline()
        if limit is not None:
            now = time.time()
            if now >= limit or now + (now - start) * (total - done) / max(done, 1) > limit:
                raise BatchAbandoned

    return report


@contextlib.contextmanager
def interrupt_guard(notice: Callable[[str], None], grace_s: float = DEFAULT_GRACE_S) -> Iterator[StopFlag]:
    """Catch Ctrl-C and SIGTERM for a sweep: the first Ctrl-C finishes and saves the current batch, the
    second stops at once; SIGTERM stops within ``grace_s`` (see ``StopFlag.terminate``).

    Either way finished units stay complete (atomic files). A no-op outside the main thread.
    """
    flag = StopFlag(grace_s, notice)
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def on_int(_signum: int, _frame: object) -> None:
        if flag.requested:
            raise KeyboardInterrupt
        flag.interrupt()

    def on_term(_signum: int, _frame: object) -> None:
        flag.terminate()

    previous = signal.signal(signal.SIGINT, on_int), signal.signal(signal.SIGTERM, on_term)
    try:
        yield flag
    finally:
        flag.flush()
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
