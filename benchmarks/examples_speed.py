"""How fast ``featviz examples`` ranks images: images per second of the pass, on 2 CPU threads.

Synthetic photos (smooth random colour fields with noise, JPEG quality 90, 500x375 px,
about the size of an ImageNet photo) are written to a temporary folder, then the default
model (EfficientNet-Lite0, 224 px) ranks them for one layer with different numbers of
decoding workers. The pass's figure excludes loading the model and measuring the
receptive field (done once per run); the write-out of the crops is timed separately.

    python benchmarks/examples_speed.py                       # 256 images, _blocks.10, workers 0/1/2
    python benchmarks/examples_speed.py --images 512 --workers 2 --batch-size 64

Not part of the test suite. On a machine shared with other jobs, expect much lower figures.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from featviz_cli.config import ModelSpec  # noqa: E402
from featviz_cli.examples import collect, write_examples  # noqa: E402
from featviz_cli.models import load_model  # noqa: E402


def synthetic_photos(folder: Path, n: int, size: tuple[int, int] = (500, 375), seed: int = 0) -> None:
    """``n`` JPEGs of smooth random colour fields plus noise (they decode like photos, not like flat colour)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        low = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        im = Image.fromarray(low).resize(size, Image.Resampling.BICUBIC)
        arr = np.clip(np.asarray(im, dtype=np.int16) + rng.integers(-25, 25, (size[1], size[0], 3)), 0, 255)
        path = folder / f"{i // 100:03d}" / f"{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr.astype(np.uint8)).save(path, quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--layer", default="_blocks.10")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the pass; decoding stays on the CPU)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; worker counts interleaved, medians reported")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, info = load_model(ModelSpec(name="efficientnet_lite0"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        synthetic_photos(folder, args.images)
        for round_ in range(args.repeat):  # A B C A B C: contention hits every setting alike
            for workers in args.workers:
                result = collect(model, info, [args.layer], folder, k=args.k, batch_size=args.batch_size,
                                 workers=workers, device=args.device)
                t1 = time.perf_counter()
                write_examples(result, Path(tmp) / f"out{workers}", workers=workers)
                written = time.perf_counter() - t1
                n_examples = result.layers[args.layer].units * args.k
                rows.append({
                    "round": round_, "workers": workers, "images": args.images, "batch_size": args.batch_size,
                    "pass_images_per_s": result.timings["images_per_s"], "pass_s": result.timings["pass_s"],
                    "receptive_field_s": result.timings["receptive_field_s"], "write_s": round(written, 2),
                    "examples_written": n_examples, "write_ms_per_example": round(1000 * written / n_examples, 1),
                })
                print(f"round {round_} workers={workers}: {result.timings['images_per_s']:.1f} images/s "
                      f"({args.images} images in {result.timings['pass_s']:.1f}s; receptive field "
                      f"{result.timings['receptive_field_s']:.1f}s; writing {n_examples} examples {written:.1f}s)",
                      flush=True)
    for workers in args.workers:
        mine = [r for r in rows if r["workers"] == workers]
        print(f"median workers={workers}: {statistics.median(r['pass_images_per_s'] for r in mine):.1f} images/s, "
              f"{statistics.median(r['write_ms_per_example'] for r in mine):.1f} ms per example written")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"model": "efficientnet_lite0", "layer": args.layer, "threads": args.threads,
                      "device": args.device, "cpu": platform.processor() or platform.machine(),
                      "torch": torch.__version__, "peak_rss_mb": round(peak_mb), "runs": rows}))


if __name__ == "__main__":
    main()
