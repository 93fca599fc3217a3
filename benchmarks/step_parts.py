"""featviz's own share of a step, without the network: ``python -m benchmarks.step_parts``.

The floor ratio of ``benchmarks.compare`` is featviz's step over the bare network's; what
is left is the image parameterization (FFT, colour, sigmoid), the transforms and
preprocessing (one resampling, one affine), their backward, and the optimizer. This times
those parts alone, at the benchmark's batch and size, as the engine builds them.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from benchmarks.compare import WORKS
from featviz_cli.config import ModelSpec, parse_spec
from featviz_cli.models import load_model
from featviz_cli.models.preprocess import Preprocess
from featviz_cli.optimizers import make_optimizer
from featviz_cli.recipe import build_recipe
from featviz_cli.runtime import tune_host_allocator


def median_ms(fn: Callable[[], object], steps: int) -> float:
    """Median wall milliseconds of ``fn`` over ``steps`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="googlenet", choices=list(WORKS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    tune_host_allocator()
    work = WORKS[args.work]
    spec = parse_spec({"model": {"name": work.model, "weights": "none"}, "param": {"size": args.size}, "device": "cpu",
                       "objective": {"type": "channel", "layer": work.layer, "units": list(range(args.batch))}})
    _, info = load_model(ModelSpec(name=work.model, weights="none"))
    recipe = build_recipe(spec, info, torch.device("cpu"))
    image, transform, gen, pre = recipe.image, recipe.transform, recipe.generator, Preprocess(info)
    opt = make_optimizer(spec.optimizer.type, image.params, spec.optimizer.lr)

    def image_both() -> None:
        x = image()
        x.backward(torch.ones_like(x))

    def all_both() -> None:
        x = pre(transform(image(), gen))
        x.backward(torch.ones_like(x))

    rows = {
        "image forward (FFT, colour, sigmoid)": median_ms(image, args.steps),
        "image forward + backward": median_ms(image_both, args.steps),
        "image + transforms + preprocessing, forward": median_ms(lambda: pre(transform(image(), gen)), args.steps),
        "image + transforms + preprocessing, forward + backward": median_ms(all_both, args.steps),
        f"optimizer step ({spec.optimizer.type})": median_ms(opt.step, args.steps),
    }
    print(f"# {args.work}: batch {args.batch}, {args.size} px, {args.threads} threads, median of {args.steps} (ms)")
    for name, ms in rows.items():
        print(f"{name:<58} {ms:7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
