"""Running a sweep: rendering batches, in this process or in one spawned worker process per device.

A partly saved batch is optimized again in full, so a unit's image depends only on the
spec, and only its missing units are written. The first Ctrl-C stops after the current
batch (``interrupt_guard``).
"""
from __future__ import annotations

import contextlib
import copy
import os
import queue
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from .. import __version__
from ..config import Spec
from ..errors import FeatvizError
from ..outputs import prepare_output_dir, to_uint8
from .manifest import rebuild
from .plan import Batch, Plan, make_plan, shard_batches, sweep_term
from .record import open_run, read_record, run_lock, utc_now
from .units import read_unit, write_unit


class SweepProgress(Protocol):
    """Progress of a sweep: ``__call__`` for the current batch's steps, ``units`` for the whole sweep."""

    def __call__(self, done: int, total: int, value: float) -> None: ...

    def units(self, done: int, total: int) -> None: ...


# ---------------------------------------------------------------- rendering batches


def batch_spec(plan: Plan, batch: Batch, device: str) -> Spec:
    """The plain render spec of one batch: the swept term with this batch's layer and unit list."""
    from ..hooks import OUTPUT

    spec = copy.deepcopy(plan.spec)
    term = spec.objective[plan.term]
    term.layer = None if batch.layer == OUTPUT else batch.layer
    term.unit, term.units = None, list(batch.units)
    spec.param.batch = None
    spec.device = device
    return spec


@dataclass
class Worker:
    """Who renders: the shard and worker written into each unit's record."""

    shard: str = "0/1"
    index: int = 0


def render_batch(plan: Plan, batch: Batch, out: Path, model: Any, info: Any, device: str, *,
                 progress: Callable[[int, int, float], None] | None = None,
                 worker: Worker | None = None) -> list[int]:
    """Optimize one batch and write its units that are not done yet; return the units written."""
    from ..engine import render

    lp = plan.layer(batch.layer)
    todo = [u for u in batch.units if read_unit(out, lp, u, plan.spec_hash) is None]
    if not todo:
        return []
    worker = worker or Worker()
    result = render(batch_spec(plan, batch, device), model=model, info=info, progress=progress)
    images = to_uint8(result.images.permute(0, 2, 3, 1))
    snaps = {k: to_uint8(v.permute(0, 2, 3, 1)) for k, v in result.snapshots.items()}
    term = plan.spec.objective[plan.term]
    for pos, unit in enumerate(batch.units):
        if unit not in todo:
            continue
        record = {
            "featviz": __version__,
            "spec_hash": plan.spec_hash,
            "layer": lp.layer,
            "unit": unit,
            "label": lp.label(unit),
            "type": term.type,
            "objective": result.values[pos],
            "steps": result.steps,
            "seed": plan.spec.seed,
            "size": plan.spec.param.size,
            "device": result.device,
            "precision": result.precision,
            "time_s": round(result.timings["optimize_s"] / len(batch.units), 4),
            "batch": {"index": batch.index, "position": pos, "units": list(batch.units),
                      "optimize_s": result.timings["optimize_s"], "step_ms": result.timings["step_ms"]},
            "shard": worker.shard,
            "worker": worker.index,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "finished": utc_now(),
        }
        write_unit(out, lp, unit, images[pos], {k: v[pos] for k, v in snaps.items()}, record)
    return todo


# ---------------------------------------------------------------- running a sweep


@dataclass
class SweepReport:
    """What a sweep run did."""

    out: Path
    spec_hash: str
    planned: int
    total: int
    done_before: int
    rendered: list[tuple[str, int]] = field(default_factory=list)
    interrupted: bool = False
    failures: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    index: Path | None = None
    devices: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        """Units of this shard done now."""
        return self.done_before + len(self.rendered)


class StopFlag:
    """Set when the sweep should stop after the current batch (the first Ctrl-C)."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested


@contextlib.contextmanager
def interrupt_guard(notice: Callable[[str], None]) -> Iterator[StopFlag]:
    """First Ctrl-C: finish and save the current batch, then stop; the second stops at once.

    Either way finished units stay complete (atomic files). A no-op outside the main thread.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(_signum: int, _frame: object) -> None:
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True
        notice("Stopping after the current batch is saved (Ctrl-C again to stop now).")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def run_sweep(spec: Spec, out: str | Path | None = None, *, shard: tuple[int, int] = (0, 1),
              devices: list[str] | None = None, new_run: bool = False, progress: SweepProgress | None = None,
              stop: Callable[[], bool] | None = None, build_gallery: bool = True) -> SweepReport:
    """Render every unit of the spec's sweep term that this shard owns into ``out`` and rebuild its outputs.

    Resumes what ``out`` already holds for the same spec; refuses a different spec unless
    ``new_run``. With several ``devices``, one worker process per device shares the batches.
    ``stop()`` is polled between batches.
    """
    from ..runtime import pick_device
    from ..models import load_model

    t0 = time.perf_counter()
    sweep_term(spec)  # spec errors before any model is loaded
    out = prepare_output_dir(Path(out or spec.output.dir))
    devices = devices or [spec.device]
    device_type = pick_device(devices[0]).type
    model, info = load_model(spec.model)
    with run_lock(out):
        existing = read_record(out)
        recorded = existing.get("batch_size") if existing and not new_run else None
        plan = make_plan(spec, model, info, device_type, recorded_batch=recorded)
        open_run(out, plan, info, existing, new_run=new_run)
    mine = shard_batches(plan.batches, *shard)
    report = SweepReport(out, plan.spec_hash, plan.total, sum(len(b.units) for b in mine), 0, devices=devices)
    pending = []
    for b in mine:
        lp = plan.layer(b.layer)
        done = sum(read_unit(out, lp, u, plan.spec_hash) is not None for u in b.units)
        report.done_before += done
        if done < len(b.units):
            pending.append(b)
    if progress is not None:
        progress.units(report.done, report.total)
    stop = stop or (lambda: False)
    label = f"{shard[0]}/{shard[1]}"
    if len(devices) == 1:
        for b in pending:
            if stop():
                break
            written = render_batch(plan, b, out, model, info, devices[0], progress=progress, worker=Worker(label))
            report.rendered += [(b.layer, u) for u in written]
            if progress is not None:
                progress.units(report.done, report.total)
    else:
        del model  # each worker loads its own
        _run_workers(plan, pending, out, devices, label, report, progress, stop)
    report.interrupted = stop() and report.done < report.total
    if build_gallery:
        report.index = rebuild(out, page_size=spec.sweep.page_size).index
    report.elapsed_s = time.perf_counter() - t0
    return report


def _run_workers(plan: Plan, pending: list[Batch], out: Path, devices: list[str], shard: str,
                 report: SweepReport, progress: SweepProgress | None, stop: Callable[[], bool]) -> None:
    """Share ``pending`` among one spawned process per device; events come back on a queue."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    tasks, events = ctx.Queue(), ctx.Queue()
    start, halt = ctx.Event(), ctx.Event()
    for b in pending:
        tasks.put(b.index)
    for _ in devices:
        tasks.put(None)
    n_cpu = sum(d == "cpu" for d in devices)
    threads = max(1, (os.cpu_count() or 1) // max(1, n_cpu))
    procs = [ctx.Process(target=_worker_main, name=f"featviz-worker-{w}", daemon=True,
                         args=(w, d, plan, str(out), shard, tasks, events, start, halt,
                               threads if d == "cpu" else 0, os.getpid()))
             for w, d in enumerate(devices)]
    for p in procs:
        p.start()
    ready, errors, reported = 0, [], set()
    try:
        while True:
            if stop() and not halt.is_set():
                halt.set()
            try:
                ev = events.get(timeout=0.2)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    break
                if ready + sum(not p.is_alive() for p in procs) >= len(procs):
                    start.set()  # a worker died before it was ready: let the others go
                continue
            kind, w = ev[0], ev[1]
            if kind == "ready":
                ready += 1
                if ready == len(procs):
                    start.set()
            elif kind == "steps" and progress is not None:
                progress(*ev[2:])
            elif kind == "batch":
                report.rendered += [(ev[2], u) for u in ev[3]]
                if progress is not None:
                    progress.units(report.done, report.total)
            elif kind == "error":
                errors.append((w, ev[2], ev[3]))
                reported.add(w)
                halt.set()
                start.set()
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(10)
            if p.is_alive():  # pragma: no cover - a worker stuck in native code
                p.kill()
    if errors:
        w, message, code = errors[0]
        error = FeatvizError(f"worker {w} ({devices[w]}): {message}")
        error.exit_code = code
        raise error
    for w, p in enumerate(procs):
        if p.exitcode not in (0, None) and w not in reported:
            report.failures.append(f"worker {w} ({devices[w]}) died with exit code {p.exitcode}")


def _worker_main(w: int, device: str, plan: Plan, out: str, shard: str, tasks: Any, events: Any,
                 start: Any, halt: Any, threads: int, parent: int) -> None:
    """A worker process: load the model once, then render batches from ``tasks`` until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides; see interrupt_guard
    signal.signal(signal.SIGTERM, _exit_on_signal)
    _die_with_parent()
    try:
        import torch

        from ..models import load_model

        if threads:
            torch.set_num_threads(threads)
        model, info = load_model(plan.spec.model)
        events.put(("ready", w))
        while not start.wait(1.0):
            _check_parent(parent)
        last = [0.0]

        def steps(done: int, total: int, value: float) -> None:
            _check_parent(parent)
            now = time.monotonic()
            if done == total or now - last[0] >= 0.5:
                last[0] = now
                events.put(("steps", w, done, total, value))

        while not halt.is_set():
            index = tasks.get()
            if index is None:
                break
            batch = plan.batches[index]
            written = render_batch(plan, batch, Path(out), model, info, device, progress=steps,
                                   worker=Worker(shard, w))
            events.put(("batch", w, batch.layer, written))
    except FeatvizError as e:
        events.put(("error", w, str(e), e.exit_code))
    except Exception as e:  # noqa: BLE001 - reported to the coordinator in one line
        events.put(("error", w, f"unexpected {type(e).__name__}: {e}", 1))


def _exit_on_signal(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def _check_parent(parent: int) -> None:
    """Exit if the coordinator is gone (killed): nobody would hand out work or collect events."""
    if os.getppid() != parent:
        raise SystemExit(1)


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the coordinator dies (even by SIGKILL); elsewhere a no-op."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
