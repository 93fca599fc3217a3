"""Worker processes for ``--devices``: one spawned process per device, sharing a sweep's batches.

Each worker loads the model once and takes batch indices from a queue; events (ready, steps,
a batch written or abandoned, an error) come back on another. The coordinator alone reacts to
Ctrl-C and SIGTERM: it stops handing out batches and passes the SIGTERM deadline on, and a
worker gives its batch up as the coordinator's own loop would (``stop.watch``).
"""
from __future__ import annotations

import contextlib
import os
import queue
import signal
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import FeatvizError
from .batch import Worker, render_batch
from .plan import Batch, Plan
from .stop import EXIT_TERMINATED, BatchAbandoned, Progress, StopFlag, watch


def run_workers(plan: Plan, pending: list[Batch], out: Path, devices: list[str], shard: str,
                progress: Progress | None, saved: Callable[[str, list[int]], None],
                stop: StopFlag) -> tuple[list[int], list[str]]:
    """Share ``pending`` among one spawned process per device; ``saved(layer, units)`` after each batch.

    Returns the batches abandoned after a SIGTERM and the workers that died (as messages).
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    tasks, events = ctx.Queue(), ctx.Queue()
    start, halt = ctx.Event(), ctx.Event()
    deadline = ctx.Value("d", 0.0, lock=False)  # time.time() of the SIGTERM deadline; 0: none
    for b in pending:
        tasks.put(b.index)
    for _ in devices:
        tasks.put(None)
    n_cpu = sum(d == "cpu" for d in devices)
    threads = max(1, (os.cpu_count() or 1) // max(1, n_cpu))
    procs = [ctx.Process(target=_worker_main, name=f"featviz-worker-{w}", daemon=True,
                         args=(w, d, plan, str(out), shard, tasks, events, start, halt, deadline,
                               threads if d == "cpu" else 0, os.getpid()))
             for w, d in enumerate(devices)]
    for p in procs:
        p.start()
    ready, errors, reported, abandoned = 0, [], set(), []
    busy: dict[int, int] = {}  # worker -> the batch it is rendering
    try:
        while True:
            if stop() and not halt.is_set():
                halt.set()
            if stop.deadline is not None:
                deadline.value = stop.deadline
                if time.time() > stop.deadline:  # a worker still busy would miss it: its batch is lost anyway
                    for w, p in enumerate(procs):
                        if p.is_alive():
                            p.kill()
                            reported.add(w)
                            if w in busy:
                                abandoned.append(busy.pop(w))
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
            elif kind == "took":
                busy[w] = ev[2]
            elif kind == "batch":
                busy.pop(w, None)
                saved(ev[2], ev[3])
            elif kind == "abandoned":
                busy.pop(w, None)
                abandoned.append(ev[2])
            elif kind == "error":
                errors.append((w, ev[2], ev[3]))
                reported.add(w)
                halt.set()
                start.set()
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():  # stopping at once (a second Ctrl-C, an error): files are atomic
                p.kill()
        for p in procs:
            p.join(10)
    if errors:
        w, message, code = errors[0]
        error = FeatvizError(f"worker {w} ({devices[w]}): {message}")
        error.exit_code = code
        raise error
    failures = [f"worker {w} ({devices[w]}) died with exit code {p.exitcode}"
                for w, p in enumerate(procs) if p.exitcode not in (0, None) and w not in reported]
    return abandoned, failures


def _worker_main(w: int, device: str, plan: Plan, out: str, shard: str, tasks: Any, events: Any,
                 start: Any, halt: Any, deadline: Any, threads: int, parent: int) -> None:
    """A worker process: load the model once, then render batches from ``tasks`` until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides; see stop.interrupt_guard
    signal.signal(signal.SIGTERM, lambda _s, _f: _term_unless_parent(parent))
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
            events.put(("took", w, index))
            try:
                written = render_batch(plan, batch, Path(out), model, info, device,
                                       progress=watch(steps, lambda: deadline.value or None),
                                       worker=Worker(shard, w))
            except BatchAbandoned:
                events.put(("abandoned", w, batch.index))
                events.close()
                events.join_thread()  # the event is delivered; nothing is left to write
                os._exit(0)  # skip the interpreter's teardown: the grace period is short
            events.put(("batch", w, batch.layer, written, index))
    except FeatvizError as e:
        events.put(("error", w, str(e), e.exit_code))
    except Exception as e:  # noqa: BLE001 - reported to the coordinator in one line
        events.put(("error", w, f"unexpected {type(e).__name__}: {e}", 1))


def _term_unless_parent(parent: int) -> None:
    """SIGTERM in a worker: exit if the coordinator is gone; else it got (or relays) the signal and decides."""
    if os.getppid() != parent:
        raise SystemExit(EXIT_TERMINATED)


def _check_parent(parent: int) -> None:
    """Exit if the coordinator is gone (killed): nobody would hand out work or collect events."""
    if os.getppid() != parent:
        raise SystemExit(1)


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the coordinator dies (even by SIGKILL); elsewhere a no-op."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
