"""One batch of a sweep: its render spec, the optimization, and writing the units that are not done.

A partly saved batch, or one with a damaged unit, is optimized again in full, so a unit's
image depends only on the spec, and only the units that are not done are written.
"""
from __future__ import annotations

import copy
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..config import Spec
from ..outputs import heat_map, remove_temps, to_uint8
from .layout import UNITS_DIR
from .plan import Batch, Plan
from .record import utc_now
from .techniques import apply_technique
from .units import DONE, check_unit, unit_stem, write_unit


def batch_spec(plan: Plan, batch: Batch, device: str) -> Spec:
    """The plain render spec of one batch: the swept term with this batch's layer and unit list
    (as the batch's technique renders them, where it has one)."""
    from ..hooks import OUTPUT

    spec = copy.deepcopy(plan.spec)
    term = spec.objective[plan.term]
    term.layer = None if batch.layer == OUTPUT else batch.layer
    term.unit, term.units = None, list(batch.units)
    technique = plan.technique(batch)
    if technique is not None:
        apply_technique(spec, plan.term, technique)
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
    """Optimize one batch and write its units that are not done yet; return the units written.

    ``progress`` may raise (``BatchAbandoned``) to give the batch up: then nothing is written.
    """
    from ..engine import render

    lp = plan.files(batch)
    todo = [u for u in batch.units if check_unit(out, lp, u, plan.spec_hash).status != DONE]
    if not todo:
        return []
    worker = worker or Worker()
    spec = batch_spec(plan, batch, device)
    result = render(spec, model=model, info=info, progress=progress)
    images = to_uint8(result.images.permute(0, 2, 3, 1))
    snaps = {k: to_uint8(v.permute(0, 2, 3, 1)) for k, v in result.snapshots.items()}
    term = spec.objective[plan.term]  # as the batch's technique renders it
    technique = plan.technique(batch)
    k = technique.images if technique is not None else 1  # images per unit, consecutive in the batch
    remove_temps(out / UNITS_DIR / lp.dir, [unit_stem(u) for u in todo])
    for pos, unit in enumerate(batch.units):
        if unit not in todo:
            continue
        first = pos * k
        values = result.values[first : first + k]
        record = {
            "featviz": __version__,
            "spec_hash": plan.spec_hash,
            "layer": lp.layer,
            "unit": unit,
            "label": lp.label(unit),
            "type": term.type,
            "objective": values[0] if k == 1 else sum(values) / k,
            **({"technique": technique.dir} if technique is not None else {}),
            **({"objectives": values} if k > 1 else {}),
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
        pictures = [(images[i], {s: v[i] for s, v in snaps.items()}) for i in range(first, first + k)]
        maps = [{"alpha": heat_map(result.alpha[i])} for i in range(first, first + k)] if result.alpha is not None else []
        write_unit(out, lp, unit, *pictures[0], record, others=pictures[1:], maps=maps)
    return todo
