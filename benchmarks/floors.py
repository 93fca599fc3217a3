"""What each engine option buys on the bare truncated network: ``python -m benchmarks.floors``.

Forward + backward to the input of each benchmark network truncated at its layer, in fp32 or
bf16 autocast, NCHW or channels_last, with or without BatchNorm folding and fp32 strided depthwise
convolutions (featviz's full rewrite), under the allocator featviz tunes. Reported as process
CPU time per image-step on ONE thread, which a shared machine disturbs much less than wall
time; variants alternate within each repeat and the best of the repeats is shown.
"""
from __future__ import annotations

import argparse
import contextlib
import time

import torch

from benchmarks.compare import WORKS
from featviz_cli.config import ModelSpec
from featviz_cli.models import load_model
from featviz_cli.runtime import Network, folded_batchnorm, fp32_strided_depthwise, tune_host_allocator

VARIANTS = [  # (label, dtype, channels_last, rewrite: 0 none, 1 BN folded, 2 also fp32 strided depthwise)
    ("fp32 NCHW", None, False, 0),
    ("fp32 channels_last", None, True, 0),
    ("bf16 NCHW", torch.bfloat16, False, 0),
    ("bf16 channels_last", torch.bfloat16, True, 0),
    ("bf16 channels_last + BN folded", torch.bfloat16, True, 1),
    ("+ fp32 strided depthwise", torch.bfloat16, True, 2),
]


def measure(model: torch.nn.Module, layer: str, x: torch.Tensor, dtype: torch.dtype | None, cl: bool,
            rewrite: int, steps: int) -> float:
    """CPU ms per image-step of forward + backward to the input."""
    model.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
    fold = folded_batchnorm(model, [layer], x[:1]) if rewrite >= 1 else contextlib.nullcontext([])
    fp32_dw = fp32_strided_depthwise(model, x.device, dtype) if rewrite >= 2 else contextlib.nullcontext(0)
    with fold, fp32_dw:
        net = Network(model, [layer], torch.device("cpu"), dtype=dtype, channels_last=cl)

        def step() -> None:
            xi = x.detach().requires_grad_(True)
            a = net(xi)[layer]
            a[:, : x.shape[0]].float().mean().backward()

        step()
        c0 = time.process_time()
        for _ in range(steps):
            step()
        return (time.process_time() - c0) / steps / x.shape[0] * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="googlenet,resnet50,lite0")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    tune_host_allocator()
    print("| work | " + " | ".join(v[0] for v in VARIANTS) + " |")
    print("|" + " --- |" * (len(VARIANTS) + 1))
    for key in args.models.split(","):
        work = WORKS[key]
        model, info = load_model(ModelSpec(name=work.model, weights="none"))
        for p in model.parameters():
            p.requires_grad_(False)
        x = torch.rand(args.batch, 3, info.input_size, info.input_size)
        best: dict[str, float] = {}
        for _ in range(args.repeats):
            for label, dtype, cl, rewrite in VARIANTS:
                ms = measure(model, work.layer, x, dtype, cl, rewrite, args.steps)
                best[label] = min(best.get(label, ms), ms)
        print(f"| {key} {work.layer} | " + " | ".join(f"{best[v[0]]:.1f}" for v in VARIANTS) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
