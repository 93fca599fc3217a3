"""``featviz`` with test hooks, for the sweep fault tests: ``python tests/sweep_child.py sweep SPEC ...``.

Hooks, from the environment (also in ``--devices`` workers, which import this module again):

- ``FEATVIZ_TEST_MARKS=DIR``: each batch's optimization, as it starts, creates
  ``DIR/started-<layer>-<first unit>`` (so a test can signal a process in the middle of a batch);
- ``FEATVIZ_TEST_STEP_DELAY=S``: sleep S seconds at every progress report of a batch (slow batches
  with the same steps, so the same image bytes);
- ``FEATVIZ_TEST_HOLD_SHARD=I/N`` (with ``FEATVIZ_TEST_MARKS=DIR``): the sweep of shard ``I/N``, once its
  first batch is under way (the stop check before it passed), creates ``DIR/held`` and waits until it is
  sent SIGTERM (at most 900 s) before it optimizes that batch, so that a test can preempt it in the middle
  of a batch however slow the machine is; the batch's time starts after the wait, and ``DIR/held`` then
  holds the seconds waited. Only once: a rerun that finds ``DIR/held`` does not wait;
- ``FEATVIZ_TEST_REBUILD_LOG=FILE``: every rebuild appends ``want``/``got``/``free`` lines (with its
  pid and the time) to FILE; with ``FEATVIZ_TEST_REBUILD_DELAY=S`` it holds the lock S seconds longer,
  and with ``FEATVIZ_TEST_REBUILD_BARRIER=N`` it first waits until N rebuilds have arrived (so that
  they all want the lock at once).
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator


def _log(path: str, what: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"{what} {os.getpid()} {time.time():.6f}\n")


def install() -> None:
    """Patch featviz with the hooks the environment asks for."""
    from featviz_cli import engine
    from featviz_cli.sweep import manifest

    marks, delay = os.environ.get("FEATVIZ_TEST_MARKS"), float(os.environ.get("FEATVIZ_TEST_STEP_DELAY") or 0)
    if marks or delay:
        original = engine.render

        @functools.wraps(original)
        def render(spec: Any, **kwargs: Any) -> Any:
            term = next(t for t in spec.objective if t.units is not None)
            if marks:
                Path(marks, f"started-{term.layer or 'output'}-{term.units[0]}").touch()
            progress = kwargs.get("progress")
            if delay:
                def slow(done: int, total: int, value: float) -> None:
                    time.sleep(delay)
                    if progress is not None:
                        progress(done, total, value)

                kwargs["progress"] = slow
            return original(spec, **kwargs)

        engine.render = render
    shard = os.environ.get("FEATVIZ_TEST_HOLD_SHARD")
    if marks and shard and "--shard" in sys.argv[:-1] and sys.argv[sys.argv.index("--shard") + 1] == shard:
        _hold_first_batch(Path(marks) / "held")
    log, hold = os.environ.get("FEATVIZ_TEST_REBUILD_LOG"), float(os.environ.get("FEATVIZ_TEST_REBUILD_DELAY") or 0)
    if log:
        lock = manifest.run_lock

        @contextlib.contextmanager
        def logged_lock(out: Path) -> Iterator[bool]:
            barrier = int(os.environ.get("FEATVIZ_TEST_REBUILD_BARRIER") or 0)
            if barrier:
                _log(log, "arrive")
                deadline = time.monotonic() + 120
                while Path(log).read_text().count("arrive") < barrier and time.monotonic() < deadline:
                    time.sleep(0.05)
            _log(log, "want")
            with lock(out) as locked:
                _log(log, "got")
                time.sleep(hold)
                try:
                    yield locked
                finally:
                    _log(log, "free")

        manifest.run_lock = logged_lock


def _hold_first_batch(held: Path) -> None:
    """Make the first batch of this sweep wait for SIGTERM (see ``FEATVIZ_TEST_HOLD_SHARD``)."""
    from featviz_cli.sweep.stop import StopFlag

    watch = StopFlag.watch

    @functools.wraps(watch)
    def held_watch(self: StopFlag, progress: Any) -> Any:
        try:
            held.touch(exist_ok=False)
        except FileExistsError:
            pass  # held once already (this is the rerun)
        else:
            start = time.monotonic()
            while self.deadline is None and time.monotonic() < start + 900:
                time.sleep(0.05)
            held.write_text(f"{time.monotonic() - start:.3f}\n")  # the seconds it waited, for a failure message
        StopFlag.watch = watch
        return watch(self, progress)  # the batch's clock starts now, after the wait

    StopFlag.watch = held_watch


install()

if __name__ == "__main__":
    from featviz_cli.cli import main

    sys.argv[0] = "featviz"
    main()
