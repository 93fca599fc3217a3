"""The layout of a sweep's output directory OUT: the names of its files and directories.

Layout of an output directory OUT::

    sweep.json                     the run: hash of the resolved spec, the plan (layers, units)
    units/<layer>/00005.png        one image per unit (+ 00005_step00032.png snapshots)
    units/<layer>/00005.json       written last: the unit is done
    sheets/<layer>/sheet_000.png   contact sheets, ``sweep.page_size`` units each
    manifest.json                  every planned unit: status, files, sha256, objective, timing
    index.html, gallery/...        the static HTML gallery (see ``gallery.py``)
"""
from __future__ import annotations

RUN_FILE = "sweep.json"
MANIFEST_FILE = "manifest.json"
UNITS_DIR = "units"
SHEETS_DIR = "sheets"
ARCHIVE_DIR = "archive"
LOCK_FILE = ".featviz.lock"
