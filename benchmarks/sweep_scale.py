"""What a large sweep costs besides rendering: planning, the resume check and the rebuild, by size.

For each size, a fake model with ``--per-layer`` units in each of its layers is planned with the
sweep's own ``make_plan``; every unit is then written as a finished sweep writes it
(``write_unit``: a random ``--size`` px PNG, then its JSON) without rendering; then the benchmark
times the resume check a rerun makes (``resume_check``: every unit's files read and hashed) and
the rebuild (``rebuild``: manifest, contact sheets and every gallery page), first into a
directory without them (cold) and then again with nothing changed (warm, what every shard that
finishes does), and three parts of a warm rebuild on their own: checking the units
(``collect_units``), writing ``manifest.json`` and writing the gallery's pages. Per-unit figures
show whether anything grows faster than linearly::

    python -m benchmarks.sweep_scale                          # 10,000 and 50,000 units, 16 px
    python -m benchmarks.sweep_scale --units 2000 --size 128  # the per-unit cost at a real image size
    python -m benchmarks.sweep_scale --units 10000 --profile  # where a warm rebuild's time goes
    python -m benchmarks.sweep_scale --microscope --units 2500 5000 10000  # three techniques per unit,
                                  # dataset examples (histograms) and faithfulness on every unit page

With ``--microscope`` the units are split over three techniques (channel, neuron, two diverse
images), every layer has an ``examples.json`` (top and bottom examples, a histogram per unit) and a
faithfulness file per technique, as ``featviz examples`` and ``featviz faithfulness`` write them;
``units`` counts every render (a unit once per technique).
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from featviz_cli import sweep as sw
from featviz_cli.config import parse_spec
from featviz_cli.outputs import atomic_write_json
from featviz_cli.sweep import gallery
from featviz_cli.sweep.record import utc_now


class Wide(nn.Module):
    """A model whose layers ``layers.l0``, ``layers.l1``, ... each have ``width`` channels (1x1 convolutions)."""

    def __init__(self, n_layers: int, width: int) -> None:
        super().__init__()
        self.layers = nn.ModuleDict({f"l{i}": nn.Conv2d(3, width, 1) for i in range(n_layers)})

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [m(x) for m in self.layers.values()]


TECHNIQUES = ["channel", "neuron", {"diverse": 2}]


def _spec(layers: list[str], size: int, batch: int, page_size: int, microscope: bool = False) -> Any:
    sweep = {"batch": batch, "page_size": page_size, **({"techniques": TECHNIQUES} if microscope else {})}
    return parse_spec({"model": {"name": "test_tiny"}, "objective": {"type": "channel", "layer": layers, "units": "all"},
                       "param": {"size": size}, "steps": 512, "device": "cpu", "sweep": sweep})


def _write_units(out: Path, plan: sw.Plan, size: int) -> None:
    """Every unit's PNG and JSON, as ``render_batch`` writes them, with random pixels for images."""
    rng = np.random.default_rng(0)
    for b in plan.batches:
        lp = plan.files(b)
        k = (plan.technique(b).images if plan.technique(b) else 1)
        for pos, unit in enumerate(b.units):
            record = {"featviz": "bench", "spec_hash": plan.spec_hash, "layer": lp.layer, "unit": unit,
                      "label": lp.label(unit), "type": "channel", "objective": float(unit), "steps": 512, "seed": 0,
                      "size": size, "device": "cpu", "precision": "bfloat16", "time_s": 1.0,
                      "batch": {"index": b.index, "position": pos, "units": list(b.units), "optimize_s": 64.0,
                                "step_ms": 125.0},
                      "shard": "0/1", "worker": 0, "host": "bench", "pid": 0, "finished": utc_now()}
            image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            others = [(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), {}) for _ in range(k - 1)]
            sw.write_unit(out, lp, unit, image, {}, record, others=others)


def _write_microscope(out: Path, plan: sw.Plan) -> None:
    """Per layer an ``examples.json`` (two top and two bottom examples sharing one crop, a histogram per
    unit) and per layer and technique a faithfulness file, as the examples and faithfulness steps write them."""
    from featviz_cli.examples.layout import layer_rel
    from featviz_cli.faithfulness.layout import layer_file
    from featviz_cli.outputs import ensure_dir, png_bytes, safe_join, sha256_file
    from featviz_cli.sweep.units import read_unit

    crop = png_bytes(np.full((32, 32, 3), 128, dtype=np.uint8))
    for lp in plan.layers:
        base = ensure_dir(out, layer_rel(lp.layer))
        (base / "crop.png").write_bytes(crop)
        (base / "full.jpg").write_bytes(crop)
        ex = [{"rank": r, "source": f"photo_{r}.jpg", "activation": 2.0 - r, "x": 1, "y": 1, "full": "full.jpg",
               "crop": "crop.png", "box": [0, 0, 8, 8], "width": 64, "height": 64} for r in range(2)]
        units = {str(u): {"top": ex, "bottom": ex} for u in lp.units}
        stats = {str(u): {"count": 1000, "mean": 0.5, "std": 0.2, "min": 0.0, "max": 2.0,
                          "hist": {"start": 0.0, "width": 0.0625, "counts": list(range(32))}} for u in lp.units}
        atomic_write_json(base / "examples.json", {"layer": lp.layer, "model": "wide", "k": 2, "images_seen": 1000,
                                                   "images_root": "/photos", "units": units,
                                                   "stats": {"value": "maximum over space", "bins": 32, "units": stats}})
        sha = sha256_file(base / "examples.json")
        for t in plan.techniques:
            tl = lp.rendered_by(t)
            rows = [{"layer": f"early{i}", "render": 0.3, "top": 0.9, "random": 0.1, "score": 0.25} for i in range(4)]
            faith = {}
            for u in lp.units:
                unit = read_unit(out, tl, u, plan.spec_hash)
                shas = [unit["files"][rel]["sha256"] for rel in unit.get("images") or [unit["image"]]]
                faith[str(u)] = {"sha256": shas[0], **({"sha256s": shas} if len(shas) > 1 else {}),
                                 "activation": 3.0, "top_activation": 2.0, "ratio": 1.5, "path": 0.25,
                                 "flagged": True, "threshold": 0.5, "layers": rows}
            ensure_dir(out, str(Path(layer_file(tl.dir)).parent))
            atomic_write_json(safe_join(out, layer_file(tl.dir)), {"examples_sha256": sha, "units": faith})


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def measure(n_units: int, per_layer: int, size: int, root: Path, profile: bool = False,
            microscope: bool = False) -> dict[str, float]:
    """Plan, write, resume-check and rebuild a sweep of ``n_units``; return the seconds of each."""
    per_unit = len(TECHNIQUES) if microscope else 1
    n_layers = max(1, -(-n_units // per_layer))
    width = n_units // n_layers // per_unit
    model = Wide(n_layers, width)
    info = SimpleNamespace(name="wide", weights="none", input_size=8, class_names=None)
    spec = _spec([f"layers.l{i}" for i in range(n_layers)], size, batch=64, page_size=64, microscope=microscope)
    out = root / f"sweep-{n_units}"
    out.mkdir()
    figures: dict[str, float] = {"units": n_layers * width * per_unit, "layers": n_layers}
    figures["plan_s"], plan = _timed(sw.make_plan, spec, model, info)
    sw.open_run(out, plan, info, None, new_run=False)
    figures["write_s"], _ = _timed(_write_units, out, plan, size)
    if microscope:
        _write_microscope(out, plan)
    figures["resume_s"], resume = _timed(sw.resume_check, out, plan, plan.batches)
    assert resume.done == plan.total and not resume.pending, "the resume check did not find every unit done"
    figures["rebuild_cold_s"], rebuilt = _timed(sw.rebuild, out)
    assert rebuilt.manifest["done"] == plan.total
    if microscope:
        missing = [e for e in rebuilt.manifest["units"] if not e.get("faithfulness")  # examples: listed once,
                   or (e.get("technique") == "channel" and not e.get("examples"))]  # under the first technique
        assert not missing, missing[0]
    if profile:
        prof = cProfile.Profile()
        prof.enable()
    figures["rebuild_warm_s"], _ = _timed(sw.rebuild, out)
    if profile:
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    record = sw.read_record(out)
    figures["collect_s"], _ = _timed(sw.collect_units, out, record)
    figures["manifest_s"], _ = _timed(atomic_write_json, out / sw.MANIFEST_FILE, rebuilt.manifest)
    figures["gallery_s"], _ = _timed(gallery.write_gallery, out, record, rebuilt.manifest)
    shutil.rmtree(out)
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, nargs="+", default=[10_000, 50_000], help="sweep sizes to measure")
    ap.add_argument("--per-layer", type=int, default=2000, help="units per layer (a layer's directory)")
    ap.add_argument("--size", type=int, default=16, help="image size of the fake units, px")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary directory)")
    ap.add_argument("--profile", action="store_true", help="profile the warm rebuild of each size")
    ap.add_argument("--microscope", action="store_true",
                    help="three techniques per unit, dataset examples and faithfulness on every unit page")
    args = ap.parse_args()
    torch.set_num_threads(2)
    root = Path(tempfile.mkdtemp(prefix="featviz-scale-", dir=args.dir))
    rows = []
    try:
        for n in args.units:
            rows.append(measure(n, args.per_layer, args.size, root, args.profile, args.microscope))
            r = rows[-1]
            print(f"{int(r['units'])} units done ({int(r['layers'])} layers)", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    keys = ["plan_s", "write_s", "resume_s", "rebuild_cold_s", "rebuild_warm_s", "collect_s", "manifest_s",
            "gallery_s"]
    print(f"{'units':>7} {'layers':>6} " + " ".join(f"{k[:-2]:>13}" for k in keys))
    for r in rows:
        print(f"{int(r['units']):>7} {int(r['layers']):>6} " + " ".join(f"{r[k]:>12.3f}s" for k in keys))
    print(f"{'':>14}" + " ".join(f"{'(ms/unit)':>13}" for _ in keys))
    for r in rows:
        print(f"{int(r['units']):>7} {'':>6} " + " ".join(f"{1000 * r[k] / r['units']:>12.4f} " for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
