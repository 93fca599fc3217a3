"""Does mixed precision change how renders look? Render one spec in fp32 and in bf16/fp16, compare.

    python -m benchmarks.precision_check --spec configs/quickstart.yaml --steps 256 --device cpu --out out/precision

Writes ``<out>/fp32/`` and ``<out>/<precision>[_<b-set>]/`` (PNGs, grid, meta.json), ``<out>/diff_x4.png``
(absolute difference, 4x brighter) and ``<out>/precision_check.json``: mean/max absolute
pixel difference (0-255 scale) per image, the objective values, step times, and whether an
independent judge network (``efficientnet_lite1`` when installed) still classifies each class
render as its class. Both renders use the same seed, so fp32 vs fp32 would differ by 0.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from featviz_cli.api import render_to_dir
from featviz_cli.config import load_spec
from featviz_cli.recipe import resolve_class
from featviz_cli.outputs import atomic_write_bytes, atomic_write_json, png_bytes


def _judge(images: torch.Tensor, classes: list[int] | None, name: str) -> dict[str, Any] | None:
    """Top-1 class and target probability of each image under the judge model (None if unavailable)."""
    if not classes or name == "none":
        return None
    from featviz_cli.config import ModelSpec
    from featviz_cli.models.preprocess import Preprocess
    from featviz_cli.models import load_model

    try:
        model, info = load_model(ModelSpec(name=name))
    except Exception as e:  # noqa: BLE001 - the judge is optional (e.g. lite1 weights not installed)
        return {"judge": name, "skipped": f"{type(e).__name__}: {e}"}
    x = torch.nn.functional.interpolate(images, size=(info.input_size,) * 2, mode="bilinear", align_corners=False)
    with torch.no_grad():
        p = torch.softmax(model.eval()(Preprocess(info)(x)), dim=1)
    top = p.argmax(1).tolist()
    names = info.class_names or []
    return {
        "judge": name,
        "top1": [names[t] if t < len(names) else t for t in top],
        "correct": [t == c for t, c in zip(top, classes)],
        "p_target": [round(float(p[i, c]), 4) for i, c in enumerate(classes)],
    }


def _classes(spec: Any, class_names: Any) -> list[int] | None:
    """Target class of each image when the spec is one logit/probability term with ``units``."""
    if len(spec.objective) != 1 or spec.objective[0].type not in ("logit", "probability"):
        return None
    t = spec.objective[0]
    units = t.units if t.units is not None else [t.unit]
    return [resolve_class(u, class_names, "objective.units") for u in units]


def run(spec_path: str, out: Path, *, precision: str, steps: int | None, size: int | None, device: str,
        judge: str, overrides: list[str], b_overrides: list[str] = ()) -> dict[str, Any]:
    """Render fp32 (``a``) and ``precision`` (``b``, plus ``b_overrides``) with the same seed; write both and the comparison."""
    results = {}
    name_b = precision + "".join(f"_{o.replace('=', '-')}" for o in b_overrides)
    for name, prec, extra in (("fp32", "fp32", []), (name_b, precision, list(b_overrides))):
        sets = list(overrides) + [f"precision={prec}"] + ([f"param.size={size}"] if size else []) + extra
        spec = load_spec(spec_path, sets, steps=steps, device=device)
        t0 = time.perf_counter()
        result, _ = render_to_dir(spec, out / name)
        results[name] = (result, time.perf_counter() - t0, spec)
    a, b = results["fp32"][0], results[name_b][0]
    diff = (a.images - b.images).abs() * 255
    grid = (diff * 4).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    atomic_write_bytes(out / "diff_x4.png", png_bytes(np.concatenate(list(grid), axis=1)))
    classes = _classes(results["fp32"][2], a.model_info.class_names)
    report = {
        "spec": spec_path, "device": a.device, "steps": a.steps, "size": int(a.images.shape[-1]),
        "precision": precision, "b_overrides": list(b_overrides), "labels": a.labels,
        "mean_abs_diff_255": [round(float(d.mean()), 3) for d in diff],
        "max_abs_diff_255": [round(float(d.max()), 2) for d in diff],
        "objective": {p: [round(v, 4) for v in r[0].values] for p, r in results.items()},
        "step_ms": {p: r[0].timings["step_ms"] for p, r in results.items()},
        "wall_s": {p: round(r[1], 2) for p, r in results.items()},
        "judge": {p: _judge(r[0].images, classes, judge) for p, r in results.items()},
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    atomic_write_json(out / "precision_check.json", report)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="configs/quickstart.yaml")
    ap.add_argument("--out", default="out/precision_check")
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--size", type=int, default=None, help="param.size override (default: the spec's)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch threads on the CPU (0: torch's default)")
    ap.add_argument("--judge", default="efficientnet_lite1", help="model that classifies the renders, or 'none'")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="spec override key.path=value")
    ap.add_argument("--b-set", dest="b_overrides", action="append", default=[],
                    help="override for the second render only, e.g. channels_last=false with --precision fp32: "
                    "how far a mere change of rounding moves the images (the baseline for the bf16 figures)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run(args.spec, Path(args.out), precision=args.precision, steps=args.steps, size=args.size,
                 device=args.device, judge=args.judge, overrides=args.overrides, b_overrides=args.b_overrides)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
