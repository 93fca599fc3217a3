"""Feature accentuation, side by side: how close each variant stays to the photo, and what another network reads.

    python -m benchmarks.accentuation --threads 2 --out out/accentuation-bench

Renders ``configs/accentuation.yaml`` (the "tiger" logit of EfficientNet-Lite0 from the cat photo)
with each variant's ``--set`` overrides: no penalty, a pixel penalty (``init_l2``) and the feature
penalty at several weights. Every image is measured against the photo it started from: pixel MSE,
the relative distance ||phi(x) - phi(photo)||^2 / ||phi(photo)||^2 of Lite0's activations at
``_blocks.4`` (the penalized layer) and ``_blocks.10`` (a later one), Lite0's own tiger logit, and
what EfficientNet-Lite1, which never rendered, reads (p(tiger), top-1), plus the HF share of
``benchmarks.quality``. Writes the table (stdout and ``OUT/accentuation.md``), ``OUT/accentuation.json``
and ``OUT/sheet.png`` (the photo, then each variant, then their transparency maps).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from benchmarks.quality import Judge, high_frequency_share

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "accentuation.yaml"
LAYERS = ("_blocks.4", "_blocks.10")
VARIANTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("plain (no penalty)", ("regularizers.features=null",)),
    ("pixels, init_l2 1000", ("regularizers.features=null", "regularizers.init_l2=1000")),
    ("features _blocks.4, weight 10", ("regularizers.features.weight=10",)),
    ("features _blocks.4, weight 50", ("regularizers.features.weight=50",)),
    ("features _blocks.4, weight 200", ("regularizers.features.weight=200",)),
)


def relative_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b||^2 / ||b||^2 over every element."""
    return float(((a.float() - b.float()) ** 2).sum() / (b.float() ** 2).sum())


class Measure:
    """Distances of images to one photo in the rendering model's layers, and its class logit."""

    def __init__(self, spec: Any, photo: torch.Tensor) -> None:
        self.net = Judge(spec.model)  # the rendering model, read the way the judge reads images
        self.photo = photo
        self.unit = self.net.info.class_names.index("tiger")
        self.ref = self.layers(photo[None])

    @torch.no_grad()
    def layers(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The activations at ``LAYERS`` and the logits of (N, 3, H, W) images in [0, 1], at the model's input."""
        from featviz_cli.hooks import OUTPUT, forward_to

        return forward_to(self.net.model, self.net.inputs(images), [*LAYERS, OUTPUT])

    def row(self, image: torch.Tensor) -> dict[str, float]:
        """The distances of one (3, H, W) image to the photo, and the rendering model's tiger logit."""
        from featviz_cli.hooks import OUTPUT

        acts = self.layers(image[None])
        out = {"pixel_mse": float(((image - self.photo) ** 2).mean())}
        out.update({f"dist_{name}": relative_distance(acts[name], self.ref[name]) for name in LAYERS})
        out["logit"] = float(acts[OUTPUT][0, self.unit])
        return out


def run(variants: Sequence[tuple[str, Sequence[str]]], out: Path) -> dict[str, Any]:
    """Render each variant, measure it against the photo, write the table, JSON and sheet into ``out``."""
    from featviz_cli.api import render
    from featviz_cli.config import load_spec
    from featviz_cli.images import load_image

    base = load_spec(CONFIG)
    photo = load_image(base.param.init_image, base.param.size)
    measure, judge = Measure(base, photo), Judge("efficientnet_lite1")
    tiger = judge.info.class_names.index("tiger")
    names = judge.info.class_names

    def judged(image: torch.Tensor) -> dict[str, Any]:
        p = judge.probs(image[None])[0]
        return {"lite1_p": float(p[tiger]), "lite1_top1": names[int(p.argmax())], "hf": high_frequency_share(image)}

    rows = [{"variant": "photo", "overrides": [], **measure.row(photo), **judged(photo), "seconds": None}]
    images, maps = [photo], [None]  # the photo has no map: a white cell
    for name, overrides in variants:
        spec = load_spec(CONFIG, [*overrides, "output.alpha=true"])
        t0 = time.perf_counter()
        result = render(spec)
        seconds = time.perf_counter() - t0
        image = result.images[0].float()
        rows.append({"variant": name, "overrides": list(overrides), **measure.row(image), **judged(image),
                     "seconds": round(seconds, 1)})
        images.append(image)
        maps.append(result.alpha[0].float())
        print(f"  {name}: {seconds:.0f} s", file=sys.stderr, flush=True)
    report = {"config": str(CONFIG.relative_to(ROOT)), "judge": judge.name, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "accentuation.json").write_text(json.dumps(report, indent=2) + "\n")
    table = format_table(rows)
    (out / "accentuation.md").write_text(table + "\n")
    save_sheet(images, maps, [r["variant"] for r in rows], out / "sheet.png")
    print(table)
    return report


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The Markdown table of ``run``'s rows."""
    head = ["variant", "pixel MSE", *(f"rel. distance at `{n}`" for n in LAYERS), "Lite0 tiger logit",
            "Lite1 p(tiger)", "Lite1 top-1", "HF share", "s"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [r["variant"], f"{r['pixel_mse']:.4f}", *(f"{r[f'dist_{n}']:.3f}" for n in LAYERS), f"{r['logit']:.1f}",
                 f"{r['lite1_p']:.3f}", r["lite1_top1"], f"{r['hf']:.3f}", "" if r["seconds"] is None else f"{r['seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_sheet(images: Sequence[torch.Tensor], maps: Sequence[torch.Tensor | None], labels: Sequence[str], path: Path) -> None:
    """The labelled images in a row over their transparency maps (heat maps)."""
    import numpy as np

    from featviz_cli.outputs import heat_map, make_grid, png_bytes

    top = [np.rint(x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8) for x in images]
    bottom = [np.full_like(top[0], 255) if m is None else heat_map(m.numpy()) for m in maps]
    grid = make_grid(np.stack([*top, *bottom]), [*labels, "", *("alpha" for _ in labels[1:])], ncols=len(top))
    path.write_bytes(png_bytes(grid))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=Path("out/accentuation-bench"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    run(VARIANTS, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
