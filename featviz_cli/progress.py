"""Progress on stderr for long commands: a rich bar on a terminal, plain lines in logs, nothing when quiet."""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

from rich.console import Console


class ProgressDisplay:
    """A rich progress bar on a terminal, plain lines otherwise, nothing with ``quiet``.

    With ``units`` (sweeps) it also shows units done / total with an ETA over the whole
    sweep, and the steps of the current batch; ``__enter__`` then returns the object itself
    (``progress(done, total, value)`` for steps, ``progress.units(done, total)``); ``stage`` makes
    the callback of a later stage. ``what`` and
    ``value_name`` name the counted things and the value (``images``, ``images/s`` for examples).
    """

    def __init__(self, console: Console, quiet: bool, units: bool = False, what: str = "step",
                 value_name: str = "objective") -> None:
        self.console = console
        self.quiet = quiet
        self.with_units = units
        self.what, self.value_name = what, value_name
        self.bar: Any = None
        self.last_line = time.monotonic()
        self.last_decile = 0
        self.units_task: Any = None
        self.units_start: tuple[float, int] | None = None

    def __enter__(self) -> Any:
        if self.quiet:
            return None
        if self.console.is_terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[note]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                console=self.console)
            self.bar.start()
            if self.with_units:
                self.units_task = self.bar.add_task("units", total=None, note="")
            label = "optimizing" if self.what == "step" else self.what
            self.task = self.bar.add_task(label if not self.with_units else "batch steps", total=None, note="")
        return self

    def stage(self, what: str, value_name: str) -> Callable[[int, int, float], None]:
        """A progress callback for a later stage of the same command (the examples after a render):
        its first call starts a new bar (or names the new thing counted in plain lines)."""
        started = False

        def update(done: int, total: int, value: float) -> None:
            nonlocal started
            if not started:
                started = True
                self.what, self.value_name, self.last_decile = what, value_name, 0
                if self.bar is not None:
                    self.task = self.bar.add_task(what, total=None, note="")
            self.update(done, total, value)

        return update

    def __call__(self, done: int, total: int, value: float) -> None:
        self.update(done, total, value)

    def update(self, done: int, total: int, value: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total, note=f"{self.value_name} {value:.4g}")
            return
        now, decile = time.monotonic(), done * 10 // total
        if self.with_units:  # many batches: a step line only as a heartbeat
            if now - self.last_line >= 10.0:
                self.last_line = now
                print(f"  batch step {done}/{total} objective {value:.4g}", file=sys.stderr, flush=True)
            return
        if done == total or now - self.last_line >= 10.0 or decile != self.last_decile:
            self.last_line, self.last_decile = now, decile
            print(f"{self.what} {done}/{total} {self.value_name} {value:.4g}", file=sys.stderr, flush=True)

    def units(self, done: int, total: int) -> None:
        """Units done / total over the whole sweep, with an ETA from this run's pace."""
        now = time.monotonic()
        if self.units_start is None:
            self.units_start = (now, done)
        t0, d0 = self.units_start
        eta = (now - t0) / (done - d0) * (total - done) if done > d0 else None
        note = f"ETA {duration(eta)}" if eta is not None else ""
        if self.bar is not None:
            self.bar.update(self.units_task, completed=done, total=total, note=note)
            return
        self.last_line = now
        pct = 100.0 * done / total if total else 100.0
        print(f"units {done}/{total} ({pct:.0f}%) elapsed {duration(now - t0)}"
              + (f" {note}" if note else ""), file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def duration(seconds: float) -> str:
    """``3h04m``, ``5m07s`` or ``12s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
