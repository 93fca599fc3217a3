"""Running a sweep: resume what is done, render this shard's batches (here or in worker processes),
rebuild the shared outputs, and report.

Ctrl-C and SIGTERM stop it as ``stop`` describes; units whose files are missing or damaged
are rendered again (``units.check_unit``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from ..config import Spec
from ..outputs import output_dir
from .batch import Worker, render_batch
from .manifest import rebuild
from .plan import Batch, Plan, make_plan, shard_batches, sweep_term
from .layout import LOCK_FILE
from .record import open_run, read_record, run_lock
from .stop import BatchAbandoned, StopFlag
from .units import CORRUPT, DONE, check_unit
from .workers import run_workers


class SweepProgress(Protocol):
    """Progress of a sweep: ``__call__`` for the current batch's steps, ``units`` for the whole sweep."""

    def __call__(self, done: int, total: int, value: float) -> None: ...

    def units(self, done: int, total: int) -> None: ...


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
    damaged: list[str] = field(default_factory=list)  # what was wrong with units found corrupt at the start
    abandoned: list[int] = field(default_factory=list)  # batches given up after a SIGTERM
    done_in_manifest: int | None = None  # this shard's units done in the manifest the run wrote

    @property
    def done(self) -> int:
        """Units of this shard done now: as the manifest the run wrote counts them, where it wrote one."""
        if self.done_in_manifest is not None:
            return self.done_in_manifest
        return self.done_before + len(self.rendered)


def run_sweep(spec: Spec, out: str | Path | None = None, *, shard: tuple[int, int] = (0, 1),
              devices: list[str] | None = None, new_run: bool = False, progress: SweepProgress | None = None,
              stop: StopFlag | None = None, build_gallery: bool = True,
              notify: Callable[[str], None] | None = None) -> SweepReport:
    """Render every unit of the spec's sweep term that this shard owns into ``out`` and rebuild its outputs.

    Resumes what ``out`` already holds for the same spec, re-rendering units whose files are
    missing or damaged; refuses a different spec unless ``new_run``. With several ``devices``,
    one worker process per device shares the batches. ``stop`` is polled between batches and
    its deadline (after a SIGTERM) checked at every progress report; ``notify`` gets notices.
    """
    from ..models import load_model
    from ..runtime import pick_device

    t0 = time.perf_counter()
    sweep_term(spec)  # spec errors before any model is loaded
    with output_dir(Path(out or spec.output.dir), scratch=[LOCK_FILE]) as out:  # removed if the plan fails
        devices = devices or [spec.device]
        device_type = pick_device(devices[0]).type
        model, info = load_model(spec.model)
        with run_lock(out):
            existing = read_record(out)
            recorded = existing.get("batch_size") if existing and not new_run else None
            plan = make_plan(spec, model, info, device_type, recorded_batch=recorded)
            open_run(out, plan, info, existing, new_run=new_run)
    mine = shard_batches(plan.batches, *shard)
    resume = resume_check(out, plan, mine)
    report = SweepReport(out, plan.spec_hash, plan.total, sum(len(b.units) for b in mine), resume.done,
                         devices=devices, damaged=resume.damaged)
    pending = resume.pending
    if report.damaged and notify is not None:
        shown = "; ".join(report.damaged[:3]) + (f"; {len(report.damaged) - 3} more" if len(report.damaged) > 3 else "")
        notify(f"Re-rendering {len(report.damaged)} damaged unit(s): {shown}.")
    if progress is not None:
        progress.units(report.done, report.total)
    stop = stop or StopFlag()
    label = f"{shard[0]}/{shard[1]}"
    if len(devices) == 1:
        for b in pending:
            if stop():
                break
            try:
                written = render_batch(plan, b, out, model, info, devices[0], progress=stop.watch(progress),
                                       worker=Worker(label))
            except BatchAbandoned:
                report.abandoned.append(b.index)
                break
            report.rendered += [(b.layer, u) for u in written]
            if progress is not None:
                progress.units(report.done, report.total)
    else:
        del model  # each worker loads its own

        def saved(layer: str, units: list[int]) -> None:
            report.rendered += [(layer, u) for u in units]
            if progress is not None:
                progress.units(report.done, report.total)

        abandoned, failures = run_workers(plan, pending, out, devices, label, progress, saved, stop)
        report.abandoned += abandoned
        report.failures += failures
    if build_gallery:
        rebuilt = rebuild(out, page_size=spec.sweep.page_size)
        report.index = rebuilt.index
        keys = {(b.technique, b.layer, u) for b in mine for u in b.units}
        report.done_in_manifest = sum(e["status"] == DONE and (e.get("technique"), e["layer"], e["unit"]) in keys
                                      for e in rebuilt.manifest["units"])
    report.interrupted = stop() and report.done < report.total
    report.elapsed_s = time.perf_counter() - t0
    return report


@dataclass
class Resume:
    """What a shard's directory holds before a run: done units, damaged ones, and the batches to render."""

    done: int
    damaged: list[str]
    pending: list[Batch]


def resume_check(out: Path, plan: Plan, batches: list[Batch]) -> Resume:
    """Check every unit of ``batches`` (hashing its files, ``units.check_unit``): which are done,
    which are damaged (and how), and which batches still have a unit to render."""
    result = Resume(0, [], [])
    for b in batches:
        lp = plan.files(b)
        states = [check_unit(out, lp, u, plan.spec_hash) for u in b.units]
        result.done += sum(s.status == DONE for s in states)
        result.damaged += [s.problem for s in states if s.status == CORRUPT]
        if any(s.status != DONE for s in states):
            result.pending.append(b)
    return result
