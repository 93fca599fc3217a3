"""A short CUDA check (about a minute on an H100/H200): precision and speed of featviz on a GPU.

    python benchmarks/gpu_quick.py --out DIR

1. The quickstart classes rendered in fp32 and with bf16 autocast (same seed): time, mean
   absolute pixel difference between the two, and EfficientNet-Lite1's verdict on each
   (transfer to another model); both grids are written to DIR.
2. Speed: featviz steps per second at 224 px, batch 64, for efficientnet_lite0 `_blocks.10`
   and torchvision googlenet `inception4a` (random weights), fp32 and bf16, medians of timed runs.
Prints a table last and writes DIR/gpu_quick.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from featviz_cli.api import render_to_dir
from featviz_cli.config import ModelSpec, parse_spec
from featviz_cli.engine import render
from featviz_cli.models import load_model

CLASSES = ["goldfish", "espresso", "daisy", "monarch"]


DEVICE = "cuda"


def sync() -> None:
    """Wait for queued GPU work (no-op on the CPU dry run)."""
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def transfer(images: torch.Tensor) -> dict[str, object]:
    """Top-1 hits and target probabilities of EfficientNet-Lite1 on the renders."""
    model, info = load_model(ModelSpec(name="efficientnet_lite1"))
    x = F.interpolate(images, size=info.input_size, mode="bilinear", align_corners=False)
    with torch.no_grad():
        p = torch.softmax(model((x * 255 - 127) / 128), 1)
    idx = torch.tensor([info.class_names.index(c) for c in CLASSES])
    return {"top1": float((p.argmax(1) == idx).float().mean()), "p": [round(float(v), 3) for v in p[range(4), idx]]}


def precision_check(out: Path, steps: int) -> dict[str, object]:
    """fp32 vs bf16 autocast renders of the quickstart classes on CUDA."""
    results: dict[str, object] = {}
    images = {}
    for prec in ("fp32", "bf16"):
        spec = parse_spec({"objective": {"type": "logit", "units": CLASSES}, "param": {"size": 128},
                           "steps": steps, "device": DEVICE, "precision": prec})
        render(spec)  # warm-up (cuDNN autotune, allocator)
        sync()
        t = time.perf_counter()
        res, _ = render_to_dir(spec, out / f"quickstart_{prec}")
        results[prec] = {"seconds": round(time.perf_counter() - t, 2), "values": [round(v, 2) for v in res.values],
                         "lite1": transfer(res.images)}
        images[prec] = res.images
    results["mean_abs_pixel_diff"] = round(float((images["fp32"] - images["bf16"]).abs().mean()), 4)
    return results


def speed(model_name: str, weights: str | None, layer: str, prec: str, batch: int, steps: int) -> float:
    """Images per second (image = `steps` optimization steps) for one setting; median of 3 runs."""
    spec_d = {"model": {"name": model_name, **({"weights": weights} if weights else {})},
              "objective": {"type": "channel", "layer": layer, "units": list(range(batch))},
              "param": {"size": 224}, "steps": steps, "device": DEVICE, "precision": prec}
    spec = parse_spec(spec_d)
    model, info = load_model(spec.model)
    render(parse_spec({**spec_d, "steps": 3}), model=model, info=info)
    times = []
    for _ in range(3):
        sync()
        t = time.perf_counter()
        render(spec, model=model, info=info)
        sync()
        times.append(time.perf_counter() - t)
    return batch / sorted(times)[1]


def main() -> None:
    """Run both parts and print the table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("out/gpu_quick"))
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--bench-steps", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of the script itself")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    args.out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name(0) if DEVICE.startswith("cuda") else "cpu"
    report: dict[str, object] = {"gpu": gpu, "torch": torch.__version__}
    report["precision"] = precision_check(args.out, args.steps)
    print(json.dumps(report["precision"]), flush=True)
    rows = []
    for name, weights, layer in (("efficientnet_lite0", None, "_blocks.10"),
                                 ("torchvision/googlenet", "none", "inception4a")):
        for prec in ("fp32", "bf16"):
            try:
                ips = speed(name, weights, layer, prec, args.batch, args.bench_steps)
            except Exception as e:  # noqa: BLE001 - report and go on
                ips = float("nan")
                print(f"{name} {prec}: {type(e).__name__}: {e}", flush=True)
            rows.append({"model": name, "layer": layer, "precision": prec, "images_per_s": round(ips, 2),
                         "ms_per_image_step": round(1000 / ips / args.bench_steps, 3) if ips == ips else None})
            print(json.dumps(rows[-1]), flush=True)
    report["speed"] = rows
    (args.out / "gpu_quick.json").write_text(json.dumps(report, indent=2))
    print(f"\n{report['gpu']}, torch {report['torch']}, batch {args.batch}, 224 px, {args.bench_steps} steps per image")
    print(f"{'model':<24}{'layer':<14}{'precision':<10}{'images/s':>10}{'ms/image-step':>15}")
    for r in rows:
        print(f"{r['model']:<24}{r['layer']:<14}{r['precision']:<10}{r['images_per_s']:>10}{str(r['ms_per_image_step']):>15}")


if __name__ == "__main__":
    main()
