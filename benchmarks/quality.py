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

A setting that optimizes random crops (a ``crops`` transform, as MACO) is judged as it is meant to
be looked at: its crops are drawn at the scale it optimized (the crops' final box, +-0.05 of the
side), where other settings' crops take 0.5-1 of the side. ``--objective LAYER:N`` (repeatable,
beside ``--objective classes``, the default) renders N channels of LAYER (the same units for every
setting, spread over the layer) and scores them without a class: the unit's own mean activation on the judge's crops
(render model; relative to the first setting), the plausibility of the crops in the judge's
feature space (cosine similarity of the judge's pooled features to those of the unit's top natural
crops: the 8 of 128 photo crops from tests/data that excite the unit most; ``--references DIR``
takes them from 32 crops of each photo in DIR instead), and the HF share.

Every table also gives each setting's difference from the first one, paired by unit (channels) or class,
with a 95 % bootstrap interval over those units or classes: items differ far more from each other than
settings do, so a difference of means is only a win where its interval leaves out zero.
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
FEATURE_LAYER = "_avg_pooling"  # EfficientNet-Lite: the pooled features the classifier reads
PHOTO_CROPS = 32  # per photo: the natural crops a unit's top examples are chosen from
TOP_NATURAL = 8


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

    def __init__(self, model: Any) -> None:
        """``model``: a model name, or a ``ModelSpec`` (a spec's ``model``)."""
        from featviz_cli.config import ModelSpec
        from featviz_cli.models import load_model
        from featviz_cli.models.preprocess import Preprocess

        spec = ModelSpec(name=model) if isinstance(model, str) else model
        self.name = spec.name
        self.model, self.info = load_model(spec)
        self.pre = Preprocess(self.info)

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) images in [0, 1] resized to the network's input and preprocessed for it."""
        n = self.info.input_size
        x = F.interpolate(images.float(), size=(n, n), mode="bilinear", antialias=True, align_corners=False)
        return self.pre(x)

    @torch.no_grad()
    def probs(self, images: torch.Tensor) -> torch.Tensor:
        """(N, classes) softmax probabilities of (N, 3, H, W) images, resized to the judge's input."""
        return torch.softmax(self.model(self.inputs(images)).float(), dim=1)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C) pooled penultimate features (the input of the classifier) of (N, 3, H, W) images."""
        from featviz_cli.hooks import forward_to

        return forward_to(self.model, self.inputs(images), [FEATURE_LAYER])[FEATURE_LAYER].float().flatten(1)

    def crops(self, image: torch.Tensor, generator: torch.Generator,
              side_range: tuple[float, float] = CROP_SIDE, count: int = CROPS) -> torch.Tensor:
        """``count`` random square crops of a (3, H, W) image (side uniform in ``side_range`` of the image
        side), each resized to the judge's input size."""
        _, h, w = image.shape
        n = self.info.input_size
        out = []
        for _ in range(count):
            side = side_range[0] + (side_range[1] - side_range[0]) * float(torch.rand((), generator=generator))
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


def judged_scale(spec: Any) -> tuple[float, float]:
    """The crop sides (fractions of the image side) at which a setting's images are judged: for a setting
    that optimizes crops, its final crop box +-0.05; else ``CROP_SIDE``."""
    for t in spec.transforms:
        if t.type == "crops":
            end = float((t.box or (0.5, 0.05))[1])
            return max(0.05, end - 0.05), min(1.0, end + 0.05)
    return CROP_SIDE


def judge_images(judge: Judge, images: torch.Tensor, classes: Sequence[int], seed: int = 1234,
                 side_range: tuple[float, float] = CROP_SIDE) -> list[Scores]:
    """Scores of each image (N, 3, H, W) for its class ``classes[i]``; crops drawn from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    whole = judge.probs(images)
    scores = []
    for i, c in enumerate(classes):
        crop_p = judge.probs(judge.crops(images[i], gen, side_range))
        scores.append(Scores(
            top1=float(whole[i].argmax() == c), p=float(whole[i, c]),
            crop_top1=float((crop_p.argmax(1) == c).float().mean()), crop_p=float(crop_p[:, c].mean()),
            hf=high_frequency_share(images[i]),
        ))
    return scores


@dataclass
class Channels:
    """Channel renders to score instead of classes: ``units`` of ``layer`` (one image each)."""

    layer: str
    units: list[int]


class NaturalCrops:
    """Crops of the reference photos (tests/data by default), and what the render model's units and the judge
    make of them."""

    def __init__(self, judge: Judge, model: Any, info: Any, layers: Sequence[str], seed: int = 99,
                 photos: Path = PHOTOS) -> None:
        from featviz_cli.images import list_images, load_image

        gen = torch.Generator().manual_seed(seed)
        crops = torch.cat([judge.crops(load_image(p, 256), gen, CROP_SIDE, PHOTO_CROPS) for p in list_images(photos)])
        self.features = judge.features(crops)
        self.acts = unit_means(model, info, crops, layers)

    def top_features(self, layer: str, unit: int) -> torch.Tensor:
        """The judge's mean pooled feature of the ``TOP_NATURAL`` photo crops that excite ``unit`` most."""
        top = self.acts[layer][:, unit].topk(TOP_NATURAL).indices
        return self.features[top].mean(0)


@torch.no_grad()
def unit_means(model: Any, info: Any, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """(N, channels) spatial means of each layer's activations for (N, 3, H, W) images in [0, 1]."""
    from featviz_cli.hooks import forward_to
    from featviz_cli.models.preprocess import Preprocess

    n = info.input_size
    x = F.interpolate(images.float(), size=(n, n), mode="bilinear", antialias=True, align_corners=False)
    acts = forward_to(model, Preprocess(info)(x), list(layers))
    return {k: v.float().flatten(2).mean(-1) for k, v in acts.items()}


def score_channels(judge: Judge, natural: NaturalCrops, model: Any, info: Any, images: torch.Tensor,
                   channels: Channels, side_range: tuple[float, float], seed: int = 1234) -> list[dict[str, float]]:
    """Per channel image: the unit's mean activation and the plausibility (see the module doc) on crops."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i, unit in enumerate(channels.units):
        crops = judge.crops(images[i], gen, side_range)
        crops = (crops + 0.02 * torch.randn(crops.shape, generator=gen)).clamp(0, 1)
        act = unit_means(model, info, crops, [channels.layer])[channels.layer][:, unit].mean()
        plaus = F.cosine_similarity(judge.features(crops), natural.top_features(channels.layer, unit)[None]).mean()
        out.append({"act": float(act), "plausibility": float(plaus), "hf": high_frequency_share(images[i])})
    return out


def parse_channels(text: str, model: Any) -> Channels:
    """``LAYER:N``: N units of LAYER, evenly spread over its channels (the same for every run)."""
    from featviz_cli.errors import SpecError
    from featviz_cli.hooks import list_layers

    layer, _, count = text.rpartition(":")
    shapes = {l.name: l.shape for l in list_layers(model, torch.zeros(1, 3, 224, 224))}
    if layer not in shapes or not count.isdigit():
        raise SpecError("--objective", f"{text!r}: give 'classes' or LAYER:N with a layer of the render model "
                                       "('featviz layers' lists them).")
    n = int(count)
    width = shapes[layer][0]  # type: ignore[index]
    if not 1 <= n <= width:
        raise SpecError("--objective", f"{text!r}: N must be between 1 and the layer's {width} channels.")
    return Channels(layer, [int(k * width / n) for k in range(n)])


def setting_spec(render_model: str, overrides: Sequence[str], seed: int, channels: Channels | None = None) -> Any:
    """The quickstart-like spec of one setting: the 12 classes (or ``channels``) on ``render_model``, with
    ``--set`` overrides."""
    from featviz_cli.config import apply_override, parse_spec

    objective = ({"type": "logit", "units": list(CLASSES)} if channels is None
                 else {"type": "channel", "layer": channels.layer, "units": channels.units})
    data: dict[str, Any] = {"model": {"name": render_model}, "objective": objective, "seed": seed, "device": "cpu"}
    for item in overrides:
        apply_override(data, item)
    return parse_spec(data)


def run(settings: list[tuple[str, list[str]]], seeds: Sequence[int], render_model: str, judge_name: str,
        out: Path, progress: bool = True, objectives: Sequence[str] = ("classes",),
        crop_side: tuple[float, float] | None = None, references: Path = PHOTOS) -> dict[str, Any]:
    """Render and judge every setting; return the figures (also written under ``out``).

    ``objectives``: ``classes`` (the class logits) and/or ``LAYER:N`` (N channels of LAYER), each a table.
    ``crop_side``: judge every setting's crops at these sides, instead of each at its own (``judged_scale``).
    ``references``: the folder of photos whose crops are the channels' dataset examples.
    """
    from featviz_cli.config import ModelSpec
    from featviz_cli.engine import render
    from featviz_cli.errors import SpecError
    from featviz_cli.models import load_model
    from featviz_cli.outputs import atomic_write_bytes, atomic_write_json, make_grid, png_bytes, to_uint8

    if judge_name == render_model:
        raise SpecError("--judge", "must be another network than --render-model (a network never judges its own "
                                   "renders).")
    judge = Judge(judge_name)
    model, info = load_model(ModelSpec(name=render_model))
    class_ids = [info.class_names.index(c) for c in CLASSES] if info.class_names else list(range(len(CLASSES)))
    groups = [None if o == "classes" else parse_channels(o, model) for o in objectives]
    layers = [g.layer for g in groups if g is not None]
    natural = NaturalCrops(judge, model, info, layers, photos=references) if layers else None
    report: dict[str, Any] = {"render_model": render_model, "judge": judge_name, "seeds": list(seeds),
                              "classes": list(CLASSES), "crops": CROPS, "photos_hf": photo_hf(), "groups": [],
                              "references": str(references)}
    sheet, labels = [], []
    for group in groups:
        names = list(CLASSES) if group is None else [f"{group.layer}:{u}" for u in group.units]
        rows = []
        for name, overrides in settings:
            per_seed, seconds, cpu_seconds = [], [], []
            for seed in seeds:
                spec = setting_spec(render_model, overrides, seed, group)
                scale = crop_side or judged_scale(spec)
                t, cpu = time.perf_counter(), time.process_time()
                result = render(spec, model=model, info=info)
                cpu_seconds.append((time.process_time() - cpu) / len(names))
                if progress:
                    print(f"  {name} seed {seed}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
                seconds.append(result.timings["optimize_s"] / len(names))
                if group is None:
                    per_seed.append(judge_images(judge, result.images, class_ids, side_range=scale))
                else:
                    assert natural is not None
                    per_seed.append(score_channels(judge, natural, model, info, result.images, group, scale))
                if seed == seeds[0]:
                    sheet += sheet_rows(result.images, scale)
                    labels += [f"{name}: {n}" for n in names] + ([f"{name} crop: {n}" for n in names]
                                                                 if scale != CROP_SIDE else [])
            base = {"setting": name, "overrides": overrides, "steps": spec.steps, "crop_side": list(scale),
                    "s_per_image": statistics.mean(seconds), "cpu_s_per_image": statistics.mean(cpu_seconds)}
            rows.append({**base, **(class_row(per_seed, len(seeds)) if group is None else channel_row(per_seed))})
        if group is not None:
            for r in rows:
                r["act_relative"] = r["act"] / rows[0]["act"] if rows[0]["act"] else math.nan
        report["groups"].append({"channels": None if group is None else {"layer": group.layer, "units": group.units},
                                 "settings": rows})
    report["settings"] = report["groups"][0]["settings"]  # the class table, as before
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "quality.json", report)
    table = "\n".join(format_table(report, g) for g in report["groups"])
    (out / "quality.md").write_text(table)
    width = max(len(CLASSES) if g is None else len(g.units) for g in groups)
    atomic_write_bytes(out / "sheet.png", png_bytes(make_grid(to_uint8(torch.cat(sheet).permute(0, 2, 3, 1)),
                                                              labels, ncols=width)))
    print(table)
    return report


SHEET_SIZE = 160


def sheet_rows(images: torch.Tensor, scale: tuple[float, float]) -> list[torch.Tensor]:
    """The contact sheet's rows for one render: the images at ``SHEET_SIZE`` px, and for a setting judged on
    small crops, one seeded crop of each at the judged scale (what a user is meant to look at)."""
    def fit(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), size=(SHEET_SIZE, SHEET_SIZE), mode="bilinear", antialias=True,
                             align_corners=False).clamp(0, 1)

    rows = [fit(images)]
    if scale != CROP_SIDE:
        gen = torch.Generator().manual_seed(7)
        side = sum(scale) / 2
        rows.append(fit(torch.stack([crop_at(x, side, gen) for x in images])))
    return rows


def crop_at(image: torch.Tensor, side: float, gen: torch.Generator) -> torch.Tensor:
    """A seeded random square crop of a (3, H, W) image, ``side`` of its side."""
    _, h, w = image.shape
    s = max(8, int(round(side * min(h, w))))
    y = int(torch.randint(h - s + 1, (), generator=gen))
    x = int(torch.randint(w - s + 1, (), generator=gen))
    return image[:, y:y + s, x:x + s]


def class_row(per_seed: list[list[Scores]], n_seeds: int) -> dict[str, Any]:
    """A class table row: the means of the scores over classes and seeds."""
    flat = [s for scores in per_seed for s in scores]
    return {
        "top1": statistics.mean(s.top1 for s in flat), "p": statistics.mean(s.p for s in flat),
        "crop_top1": statistics.mean(s.crop_top1 for s in flat), "crop_p": statistics.mean(s.crop_p for s in flat),
        "hf": statistics.mean(s.hf for s in flat),
        "crop_top1_by_seed": [statistics.mean(s.crop_top1 for s in scores) for scores in per_seed],
        "per_class_crop_top1": {c: statistics.mean(per_seed[k][i].crop_top1 for k in range(n_seeds))
                                for i, c in enumerate(CLASSES)},
    }


def channel_row(per_seed: list[list[dict[str, float]]]) -> dict[str, Any]:
    """A channel table row: the means over units and seeds, and the plausibility per unit and per seed."""
    flat = [s for scores in per_seed for s in scores]
    return {k: statistics.mean(s[k] for s in flat) for k in ("act", "plausibility", "hf")} | {
        "plausibility_per_unit": [statistics.mean(per_seed[k][i]["plausibility"] for k in range(len(per_seed)))
                                  for i in range(len(per_seed[0]))],
        "plausibility_by_seed": [statistics.mean(s["plausibility"] for s in scores) for scores in per_seed]}


BOOTSTRAP = 2000  # resamples of the paired interval


def paired_interval(first: Sequence[float], other: Sequence[float], level: float = 0.95,
                    resamples: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``other - first`` over paired items (units or classes) and its bootstrap interval.

    Items differ far more from each other than settings do (one unit's plausibility spans 0.15-0.31), so a
    difference of means is only read against the spread of the paired differences: the interval resamples
    the items with replacement (seeded, so a report is reproducible) and takes the central ``level`` share.
    """
    if len(first) != len(other) or not first:
        raise ValueError("paired_interval needs two non-empty sequences of the same length")
    diff = torch.tensor(other, dtype=torch.float64) - torch.tensor(first, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    means = diff[torch.randint(len(diff), (resamples, len(diff)), generator=gen)].mean(1)
    tail = (1 - level) / 2
    lo, hi = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return float(diff.mean()), lo, hi


def _interval(first: Sequence[float], other: Sequence[float], is_first: bool) -> str:
    """``+0.004 [-0.003, +0.011]``: a paired difference and its 95 % interval, for the tables."""
    if is_first:
        return "(reference)"
    mean, lo, hi = paired_interval(first, other)
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def photo_hf() -> float | None:
    """The mean high-frequency share of the photos in tests/data (the reference for natural images)."""
    from featviz_cli.images import list_images, load_image

    values = [high_frequency_share(load_image(p, 256)) for p in list_images(PHOTOS)] if PHOTOS.is_dir() else []
    return statistics.mean(values) if values else None


def format_table(report: dict[str, Any], group: dict[str, Any] | None = None) -> str:
    """The markdown table of a report (or of one of its ``groups``): one row per setting."""
    group = group or {"channels": None, "settings": report["settings"]}
    seeds = f"{len(report['seeds'])} seeds, {report['crops']} crops each"
    if group["channels"] is not None:
        ch = group["channels"]
        refs = report.get("references", str(PHOTOS))
        lines = [f"# {report['render_model']} channels {ch['layer']}:{ch['units']}, judged by {report['judge']}: "
                 f"{seeds}; dataset examples from {refs}", "", "| setting | steps | s/image | CPU s/image | crops at | unit act | act vs first | "
                 "plausibility (by seed) | vs first, 95 % CI over units | units above the first | HF share |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        first = group["settings"][0]["plausibility_per_unit"]
        for j, r in enumerate(group["settings"]):
            by_seed = ", ".join(f"{v:.3f}" for v in r.get("plausibility_by_seed", []))
            above = sum(a > b for a, b in zip(r["plausibility_per_unit"], first))
            cpu = r.get("cpu_s_per_image", r["s_per_image"])
            lines.append(f"| {r['setting']} | {r['steps']} | {r['s_per_image']:.2f} | {cpu:.2f} | {_side(r)} | "
                         f"{r['act']:.2f} | {r['act_relative']:.2f} | {r['plausibility']:.3f}"
                         f"{f' ({by_seed})' if by_seed else ''} | {_interval(first, r['plausibility_per_unit'], j == 0)} | "
                         f"{above} of {len(first)} | {r['hf']:.3f} |")
        return "\n".join(lines) + "\n"
    lines = [f"# {report['render_model']} renders judged by {report['judge']}: {len(report['classes'])} classes x "
             f"{seeds}",
             "", "| setting | steps | s/image | CPU s/image | top-1 | p(class) | crop top-1 | crop p | HF share | "
             "crop top-1 vs first, 95 % CI over classes | crop top-1 per 10 CPU s | crops at |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    classes = list(group["settings"][0]["per_class_crop_top1"])
    first = [group["settings"][0]["per_class_crop_top1"][c] for c in classes]
    for j, r in enumerate(group["settings"]):
        cpu = r.get("cpu_s_per_image", r["s_per_image"])
        per_10s = r["crop_top1"] / cpu * 10 if cpu > 0 else math.nan
        spread = max(r["crop_top1_by_seed"]) - min(r["crop_top1_by_seed"])
        lines.append(f"| {r['setting']} | {r['steps']} | {r['s_per_image']:.2f} | {cpu:.2f} | {r['top1']:.2f} | "
                     f"{r['p']:.3f} | "
                     f"{r['crop_top1']:.2f} (±{spread / 2:.2f}) | {r['crop_p']:.3f} | {r['hf']:.3f} | "
                     f"{_interval(first, [r['per_class_crop_top1'][c] for c in classes], j == 0)} | {per_10s:.2f} "
                     f"| {_side(r)} |")
    if report.get("photos_hf") is not None:
        lines += ["", f"Photos (tests/data): HF share {report['photos_hf']:.3f}."]
    return "\n".join(lines) + "\n"


def _side(row: dict[str, Any]) -> str:
    lo, hi = row.get("crop_side", CROP_SIDE)
    return f"{lo:.2f}-{hi:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"),
                    help="a setting: its name, then --set style overrides (repeatable)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--render-model", default="efficientnet_lite0")
    ap.add_argument("--judge", default="efficientnet_lite1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("out/quality"))
    ap.add_argument("--objective", action="append", metavar="classes|LAYER:N",
                    help="what every setting renders, one table each (repeatable): the classes (default) or "
                    "N channels of LAYER")
    ap.add_argument("--crop-side", type=float, nargs=2, metavar=("LO", "HI"),
                    help="judge every setting on crops of these sides (fractions of the image side), so that "
                    "settings that optimize different crop scales are compared at one view scale")
    ap.add_argument("--references", type=Path, default=PHOTOS, metavar="DIR",
                    help="the photos whose crops are the channels' dataset examples (default: tests/data; "
                    "'python -m benchmarks.varied_photos DIR' gives seven)")
    args = ap.parse_args(argv)
    from featviz_cli.errors import FeatvizError, SpecError
    from featviz_cli.images import list_images

    torch.set_num_threads(args.threads)
    settings = [(s[0], s[1:]) for s in (args.setting or [["default"]])]
    try:
        if args.crop_side and not 0.05 <= args.crop_side[0] <= args.crop_side[1] <= 1.0:
            raise SpecError("--crop-side", "LO HI needs 0.05 <= LO <= HI <= 1 (fractions of the image side).")
        if any(o != "classes" for o in args.objective or []):
            list_images(args.references, field="--references")  # before loading the models: fail fast
        run(settings, args.seeds, args.render_model, args.judge, args.out, objectives=args.objective or ["classes"],
            crop_side=tuple(args.crop_side) if args.crop_side else None, references=args.references)
    except FeatvizError as e:  # the report is written only at the end: nothing half-written
        print(f"Error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
