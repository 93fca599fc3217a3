"""Helpers shared by the sweep tests: the tiny sweep spec, running ``featviz sweep`` as a process,
checking a finished directory, and comparing it with an uninterrupted reference sweep."""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

import featviz_cli
from featviz_cli import sweep as sw
from featviz_cli.config import parse_spec
from featviz_cli.outputs import sha256_file

from conftest import featviz_cmd

# 16 units: 0..7 of act2 and of act3, in 8 batches of 2; contact sheets and layer pages of 4.
SWEEP = {
    "model": {"name": "test_tiny"},
    "objective": {"type": "channel", "layer": ["act2", "act3"], "units": "0:8"},
    "param": {"size": 16},
    "steps": 4,
    "thresholds": [2],
    "device": "cpu",
    "sweep": {"batch": 2, "page_size": 4},
}
TOTAL = 16
#: Fields of a unit's JSON that say when, where and how fast it was rendered, not what.
RUN_FIELDS = ("time_s", "shard", "worker", "host", "pid", "finished")
BATCH_RUN_FIELDS = ("optimize_s", "step_ms")
#: Rows of a gallery unit page that show those fields.
_RUN_ROWS = re.compile(r"<tr><th>(time per unit|shard|worker|finished)</th><td>[^<]*</td></tr>")


def spec_dict(**changes: Any) -> dict[str, Any]:
    """The tiny sweep spec with top-level fields replaced."""
    data = copy.deepcopy(SWEEP)
    for key, value in changes.items():
        data[key] = value
    return data


def term(**fields: Any) -> dict[str, Any]:
    """The tiny sweep spec with one channel term on ``act2``."""
    return spec_dict(objective={"type": "channel", "layer": "act2", **fields})


def plan_of(tiny_model: Any, data: dict[str, Any]) -> sw.Plan:
    """The plan of a spec dict on the tiny model."""
    model, info = tiny_model
    return sw.make_plan(parse_spec(data), model, info)


def unit_mtimes(out: Path) -> dict[str, int]:
    """Relative path -> mtime_ns of every file under units/."""
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in (out / "units").rglob("*") if p.is_file()}


def check_complete(out: Path) -> dict[str, Any]:
    """Every planned unit present exactly once, images decode, no temp file, manifest agrees with the files."""
    record = json.loads((out / "sweep.json").read_text())
    expected = set()
    for lay in record["layers"]:
        for u in lay["units"]:
            meta = json.loads((out / "units" / lay["dir"] / f"{u:05d}.json").read_text())
            assert (meta["layer"], meta["unit"], meta["spec_hash"]) == (lay["layer"], u, record["spec_hash"])
            for rel, rec in meta["files"].items():
                with Image.open(out / rel) as im:
                    im.load()
                    assert im.size == (rec["width"], rec["height"])
                assert sha256_file(out / rel) == rec["sha256"]
                expected.add(rel)
            expected.add(f"units/{lay['dir']}/{u:05d}.json")
    assert set(unit_mtimes(out)) == expected  # nothing twice, nothing partial, nothing else
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec_hash"] == record["spec_hash"]
    assert manifest["total"] == manifest["done"] == record["total"] == len(manifest["units"])
    keys = [(e["layer"], e["unit"]) for e in manifest["units"]]
    assert len(set(keys)) == len(keys) == record["total"]
    for e in manifest["units"]:
        assert e["status"] == "done" and sha256_file(out / e["image"]) == e["sha256"]
    return manifest


# ---------------------------------------------------------------- the uninterrupted reference

_REFERENCES: dict[str, Path] = {}


def reference(tmp_path_factory: Any, data: dict[str, Any] | None = None) -> Path:
    """An uninterrupted one-process sweep of ``data`` (default the tiny sweep), made once per test session."""
    data = data if data is not None else SWEEP
    key = json.dumps(data, sort_keys=True)
    if key not in _REFERENCES or not (_REFERENCES[key] / "manifest.json").is_file():
        out = tmp_path_factory.mktemp("reference") / "out"
        report = sw.run_sweep(parse_spec(copy.deepcopy(data)), out)
        assert not report.interrupted and report.done == report.total
        _REFERENCES[key] = out
    return _REFERENCES[key]


def unit_view(path: Path) -> dict[str, Any]:
    """A unit's JSON without the fields that record when, where and how fast it ran."""
    meta = json.loads(path.read_text())
    for key in RUN_FIELDS:
        meta.pop(key)
    for key in BATCH_RUN_FIELDS:
        meta["batch"].pop(key)
    return meta


def gallery_view(out: Path) -> dict[str, str]:
    """Every HTML page of a gallery, with the rows that show run fields (time, shard, worker) removed."""
    pages = {p.relative_to(out).as_posix(): p for p in out.rglob("*.html")}
    return {rel: _RUN_ROWS.sub("", p.read_text()) for rel, p in sorted(pages.items())}


def assert_same_as(out: Path, ref: Path) -> None:
    """``out`` holds the same sweep as ``ref``: every PNG (units and contact sheets) byte for byte, the unit
    JSONs but for run fields, the manifest's statuses and hashes, and the gallery's pages."""
    pngs = sorted(p.relative_to(ref).as_posix() for p in ref.rglob("*.png"))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png") if "archive" not in p.parts) == pngs
    for rel in pngs:
        assert (out / rel).read_bytes() == (ref / rel).read_bytes(), rel
    metas = sorted(p.relative_to(ref).as_posix() for p in (ref / "units").rglob("*.json"))
    assert sorted(p.relative_to(out).as_posix() for p in (out / "units").rglob("*.json")) == metas
    for rel in metas:
        assert unit_view(out / rel) == unit_view(ref / rel), rel
    a, b = (json.loads((d / "manifest.json").read_text()) for d in (out, ref))
    assert [(e["layer"], e["unit"], e["status"], e["sha256"], e["objective"]) for e in a["units"]] == [
        (e["layer"], e["unit"], e["status"], e["sha256"], e["objective"]) for e in b["units"]]
    assert a["layers"] == b["layers"]
    assert gallery_view(out) == gallery_view(ref)


# ---------------------------------------------------------------- the command line as a process


def env() -> dict[str, str]:
    """The environment of a ``featviz`` child process: plain output, one thread, this checkout first."""
    e = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    e["NO_COLOR"] = "1"
    e["OMP_NUM_THREADS"] = "1"  # tiny tensors: one thread each is faster on a shared 2-core machine
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(featviz_cli.__file__).parent.parent),
                                                    e.get("PYTHONPATH")]))
    return e


def write_spec(tmp_path: Path, data: dict[str, Any], name: str = "sweep.yaml") -> Path:
    """``data`` as a YAML file in ``tmp_path``."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def start(spec: Path, out: Path, *extra: str, cmd: list[str] | None = None) -> subprocess.Popen[str]:
    """Start ``featviz sweep SPEC --out OUT ...`` as a child process."""
    return subprocess.Popen((cmd or featviz_cmd()) + ["sweep", str(spec), "--out", str(out), *extra], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def done_count(out: Path) -> int:
    """Unit JSONs written so far."""
    return len(list((out / "units").glob("*/*.json"))) if (out / "units").is_dir() else 0


def wait_for(proc: subprocess.Popen[str], ready: Any, timeout: float = 90.0) -> None:
    """Poll ``ready()`` until true; fail if the process ends first or nothing happens in ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the sweep ended before it could be stopped: {proc.communicate()}"
        assert time.monotonic() < deadline, "the sweep made no progress"
        time.sleep(0.02)
