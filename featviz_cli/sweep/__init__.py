"""Sweeps: every unit of one or more layers, rendered in batches, resumable and shardable.

The package, by stage: ``plan`` (units, batches, shards), ``record`` (``sweep.json`` and
the lock), ``units`` (per-unit files), ``run`` (rendering batches, worker processes),
``manifest`` (manifest, contact sheets, gallery) and ``layout`` (the names in OUT).
"""
from __future__ import annotations

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
from .run import (
    StopFlag,
    SweepProgress,
    SweepReport,
    Worker,
    batch_spec,
    interrupt_guard,
    render_batch,
    run_sweep,
)
from .units import read_unit, remove_temps, snapshot_suffix, unit_rel, unit_stem, write_unit

__all__ = [
    "ARCHIVE_DIR", "LOCK_FILE", "MANIFEST_FILE", "RUN_FILE", "SHEETS_DIR", "SWEEPABLE", "UNHASHED", "UNITS_DIR",
    "Batch", "LayerPlan", "Plan", "Rebuilt", "StopFlag", "SweepProgress", "SweepReport", "Worker",
    "archive_run", "batch_spec", "collect_units", "default_batch", "describe_diff", "expand_units", "hash_of",
    "hashed_view", "interrupt_guard", "layer_widths", "layers_of", "make_plan", "open_run", "parse_devices",
    "parse_shard", "plan_batches", "read_record", "read_unit", "rebuild", "remove_temps", "render_batch",
    "run_lock", "run_record", "run_sweep", "shard_batches", "sheet_rel", "snapshot_suffix", "sweep_term",
    "unit_rel", "unit_stem", "write_sheets", "write_unit",
]
