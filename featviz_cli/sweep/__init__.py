"""Sweeps: every unit of one or more layers, rendered in batches, resumable, repairable and shardable.

The package, by stage: ``plan`` (units, batches, shards), ``record`` (``sweep.json`` and
the lock), ``units`` (per-unit files and what counts as done), ``batch`` (rendering one
batch), ``run`` (a shard's run), ``workers`` (worker processes), ``stop`` (Ctrl-C and
SIGTERM), ``manifest`` (manifest, contact sheets, gallery) and ``layout`` (the names in OUT).
"""
from __future__ import annotations

from .batch import Worker, batch_spec, render_batch
from .layout import ARCHIVE_DIR, LOCK_FILE, MANIFEST_FILE, RUN_FILE, SHEETS_DIR, UNITS_DIR
from .manifest import Rebuilt, collect_units, rebuild, sheet_rel, write_sheets
from .plan import (
    SWEEPABLE,
    UNHASHED,
    Batch,
    LayerPlan,
    Plan,
    default_batch,
    expand_units,
    hash_of,
    hashed_view,
    layer_widths,
    make_plan,
    parse_devices,
    parse_shard,
    plan_batches,
    shard_batches,
    sweep_term,
)
from .record import archive_run, describe_diff, layers_of, open_run, read_record, run_lock, run_record
from .run import Resume, SweepProgress, SweepReport, resume_check, run_sweep
from .stop import (
    DEFAULT_GRACE_S,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    GRACE_ENV,
    BatchAbandoned,
    StopFlag,
    interrupt_guard,
)
from .units import UnitState, check_unit, read_unit, snapshot_suffix, unit_rel, unit_stem, write_unit

__all__ = [
    "ARCHIVE_DIR", "DEFAULT_GRACE_S", "EXIT_INTERRUPTED", "EXIT_TERMINATED", "GRACE_ENV", "LOCK_FILE",
    "MANIFEST_FILE", "RUN_FILE", "SHEETS_DIR", "SWEEPABLE", "UNHASHED", "UNITS_DIR",
    "Batch", "BatchAbandoned", "LayerPlan", "Plan", "Rebuilt", "Resume", "StopFlag", "SweepProgress", "SweepReport",
    "UnitState", "Worker",
    "archive_run", "batch_spec", "check_unit", "collect_units", "default_batch", "describe_diff", "expand_units",
    "hash_of", "hashed_view", "interrupt_guard", "layer_widths", "layers_of", "make_plan", "open_run",
    "parse_devices", "parse_shard", "plan_batches", "read_record", "read_unit", "rebuild",
    "render_batch", "resume_check", "run_lock", "run_record", "run_sweep", "shard_batches", "sheet_rel", "snapshot_suffix",
    "sweep_term", "unit_rel", "unit_stem", "write_sheets", "write_unit",
]
