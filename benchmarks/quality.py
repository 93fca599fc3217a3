"""Image quality, side by side: class renders of one network judged by another.

    python -m benchmarks.quality --setting today steps=512 --setting fast steps=128
    python -m benchmarks.quality --render-model efficientnet_lite1 --judge efficientnet_lite0 ...

Each ``--setting NAME [KEY.PATH=VALUE ...]`` renders the same 12 ImageNet classes (animals,
objects, scenes) on the render model for every ``--seeds`` seed, with the overrides applied to
the quickstart spec as ``--set`` would. Every image is judged by a network that never rendered
(EfficientNet-Lite1 by default, transferability as in Fel et al. 2023): top-1 and p(class) on
the whole image and on 16 seeded random resized crops; plus the share of spectral power above
0.25 cycles/pixel (Hann window, mean removed, 128 px luminance; photos are about 0.04). Seconds
of optimization per image (wall, and CPU time of the process, which a busy machine disturbs less) are
measured in the same run, so quality per second of work is visible.
Writes a table (stdout and ``OUT/quality.md``), ``OUT/quality.json`` and a contact sheet
``OUT/sheet.png`` (one row per setting, seed 0).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

CLASSES: tuple[str, ...] = (
    "goldfish", "flamingo", "tree frog", "golden retriever", "monarch", "jellyfish",  # animals
    "espresso", "pizza", "school bus", "violin",  # objects
    "castle", "volcano",  # scenes
)
CROPS = 16
CROP_SIDE = (0.5, 1.0)  # crop side as a fraction of the image side, uniform
HF_CUTOFF = 0.25  # cycles per pixel
HF_SIZE = 128
PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "data"


def high_frequency_share(image: torch.Tensor, size: int = HF_SIZE, cutoff: float = HF_CUTOFF) -> float:
    """The share of spectral power above ``cutoff`` cycles/pixel of a (3, H, W) image in [0, 1].

    The luminance is resized to ``size`` (antialiased), its mean removed and a 2-D Hann window
    applied; the DC term is excluded from the total.
    """
    x = F.interpolate(image[None].float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    lum = x[0].mean(0)
    lum = lum - lum.mean()
    window = torch.hann_window(size, periodic=False)
    power = torch.fft.fft2(lum * window[:, None] * window[None, :]).abs() ** 2
    f = torch.fft.fftfreq(size)
    radius = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    total = power.sum() - power[0, 0]
    return float(power[radius > cutoff].sum() / total) if total > 0 else 0.0


class Judge:
    """A classifier that never rendered: class probabilities of images in [0, 1]."""

    def __init__(self, name: str) -> None:
        from featviz_cli.config import ModelSpec
        from featviz_cli.models import load_model
        from featviz_cli.models.preprocess import Preprocess

        self.name = name
        self.model, self.info = load_model(ModelSpec(name=name))
        self.pre = Preprocess(self.info)

    @torch.no_grad()
    def probs(self, images: torch.Tensor) -> torch.Tensor:
        """(N, classes) softmax probabilities of (N, 3, H, W) images, resized to the judge's input."""
        n = self.info.input_size
        x = F.interpolate(images.float(), size=(n, n), mode="bilinear", antialias=True, align_corners=False)
        return torch.softmax(self.model(self.pre(x)).float(), dim=1)

    def crops(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``CROPS`` random square crops of a (3, H, W) image, each resized to the judge's input size."""
        _, h, w = image.shape
        n = self.info.input_size
        out = []
        for _ in range(CROPS):
            side = CROP_SIDE[0] + (CROP_SIDE[1] - CROP_SIDE[0]) * float(torch.rand((), generator=generator))
            s = max(8, int(round(side * min(h, w))))
            y = int(torch.randint(h - s + 1, (), generator=generator))
            x = int(torch.randint(w - s + 1, (), generator=generator))
            crop = image[None, :, y:y + s, x:x + s].float()
            out.append(F.interpolate(crop, size=(n, n), mode="bilinear", antialias=True, align_corners=False)[0])
        return torch.stack(out)


@dataclass
class Scores:
    """One image's judgement."""

    top1: float
    p: float
    crop_top1: float
    crop_p: float
    hf: float


def judge_images(judge: Judge, images: torch.Tensor, classes: Sequence[int], seed: int = 1234) -> list[Scores]:
    """Scores of each image (N, 3, H, W) for its class ``classes[i]``; crops drawn from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    whole = judge.probs(images)
    scores = []
    for i, c in enumerate(classes):
        crop_p = judge.probs(judge.crops(images[i], gen))
        scores.append(Scores(
            top1=float(whole[i].argmax() == c), p=float(whole[i, c]),
            crop_top1=float((crop_p.argmax(1) == c).float().mean()), crop_p=float(crop_p[:, c].mean()),
            hf=high_frequency_share(images[i]),
        ))
    return scores


def setting_spec(render_model: str, overrides: Sequence[str], seed: int) -> Any:
    """The quickstart-like spec of one setting: the 12 classes on ``render_model``, with ``--set`` overrides."""
    from featviz_cli.config import apply_override, parse_spec

    data: dict[str, Any] = {"model": {"name": render_model}, "objective": {"type": "logit", "units": list(CLASSES)},
                            "seed": seed, "device": "cpu"}
    for item in overrides:
        apply_override(data, item)
    return parse_spec(data)


def run(settings: list[tuple[str, list[str]]], seeds: Sequence[int], render_model: str, judge_name: str,
        out: Path, progress: bool = True) -> dict[str, Any]:
    """Render and judge every setting; return the figures (also written under ``out``)."""
    from featviz_cli.config import ModelSpec
    from featviz_cli.engine import render
    from featviz_cli.models import load_model
    from featviz_cli.outputs import atomic_write_bytes, atomic_write_json, make_grid, png_bytes, to_uint8

    if judge_name == render_model:
        raise SystemExit("the judge must be another network than the one that renders")
    judge = Judge(judge_name)
    model, info = load_model(ModelSpec(name=render_model))
    class_ids = [info.class_names.index(c) for c in CLASSES] if info.class_names else list(range(len(CLASSES)))
    rows, sheet = [], []
    for name, overrides in settings:
        per_seed, seconds, cpu_seconds = [], [], []
        for seed in seeds:
            spec = setting_spec(render_model, overrides, seed)
            t, cpu = time.perf_counter(), time.process_time()
            result = render(spec, model=model, info=info)
            cpu = time.process_time() - cpu
            if progress:
                print(f"  {name} seed {seed}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
            seconds.append(result.timings["optimize_s"] / len(CLASSES))
            cpu_seconds.append(cpu / len(CLASSES))
            per_seed.append(judge_images(judge, result.images, class_ids))
            if seed == seeds[0]:
                sheet.append(result.images)
        flat = [s for scores in per_seed for s in scores]
        row = {
            "setting": name, "overrides": overrides, "steps": spec.steps,
            "s_per_image": statistics.mean(seconds), "cpu_s_per_image": statistics.mean(cpu_seconds),
            "top1": statistics.mean(s.top1 for s in flat), "p": statistics.mean(s.p for s in flat),
            "crop_top1": statistics.mean(s.crop_top1 for s in flat), "crop_p": statistics.mean(s.crop_p for s in flat),
            "hf": statistics.mean(s.hf for s in flat),
            "crop_top1_by_seed": [statistics.mean(s.crop_top1 for s in scores) for scores in per_seed],
            "per_class_crop_top1": {c: statistics.mean(per_seed[k][i].crop_top1 for k in range(len(seeds)))
                                    for i, c in enumerate(CLASSES)},
        }
        rows.append(row)
    photos = photo_hf()
    out.mkdir(parents=True, exist_ok=True)
    report = {"render_model": render_model, "judge": judge_name, "seeds": list(seeds), "classes": list(CLASSES),
              "crops": CROPS, "photos_hf": photos, "settings": rows}
    atomic_write_json(out / "quality.json", report)
    table = format_table(report)
    (out / "quality.md").write_text(table)
    images = torch.cat(sheet).permute(0, 2, 3, 1)
    labels = [f"{name}: {c}" for name, _ in settings for c in CLASSES]
    atomic_write_bytes(out / "sheet.png", png_bytes(make_grid(to_uint8(images), labels, ncols=len(CLASSES))))
    print(table)
    return report


def photo_hf() -> float | None:
    """The mean high-frequency share of the photos in tests/data (the reference for natural images)."""
    from featviz_cli.images import list_images, load_image

    values = [high_frequency_share(load_image(p, 256)) for p in list_images(PHOTOS)] if PHOTOS.is_dir() else []
    return statistics.mean(values) if values else None


def format_table(report: dict[str, Any]) -> str:
    """The markdown table of a report: one row per setting."""
    lines = [f"# {report['render_model']} renders judged by {report['judge']}: {len(report['classes'])} classes x "
             f"{len(report['seeds'])} seeds, {report['crops']} crops each",
             "", "| setting | steps | s/image | CPU s/image | top-1 | p(class) | crop top-1 | crop p | HF share | "
             "crop top-1 per 10 CPU s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["settings"]:
        cpu = r.get("cpu_s_per_image", r["s_per_image"])
        per_10s = r["crop_top1"] / cpu * 10 if cpu > 0 else math.nan
        spread = max(r["crop_top1_by_seed"]) - min(r["crop_top1_by_seed"])
        lines.append(f"| {r['setting']} | {r['steps']} | {r['s_per_image']:.2f} | {cpu:.2f} | {r['top1']:.2f} | "
                     f"{r['p']:.3f} | {r['crop_top1']:.2f} (±{spread / 2:.2f}) | {r['crop_p']:.3f} | {r['hf']:.3f} | "
                     f"{per_10s:.2f} |")
    if report.get("photos_hf") is not None:
        lines += ["", f"Photos (tests/data): HF share {report['photos_hf']:.3f}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"),
                    help="a setting: its name, then --set style overrides (repeatable)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--render-model", default="efficientnet_lite0")
    ap.add_argument("--judge", default="efficientnet_lite1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("out/quality"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = [(s[0], s[1:]) for s in (args.setting or [["default"]])]
    run(settings, args.seeds, args.render_model, args.judge, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
