"""Why MACO renders were pale and washed out, measured: photos against random-phase MACO images.

    python -m benchmarks.maco_measure [--size 256] [--photos DIR]

Prints, for photos (tests/data, or DIR: ``python -m benchmarks.varied_photos DIR`` gives the seven the
built-in magnitude is fitted to) and for MACO images with a random phase (the state every
render starts from, and the contrast it keeps: both standardizations fix it), the contrast and
colour of the pixels, the share of the image's variance near the corners, the power law fitted
to the photos' spectrum per decorrelated colour channel (the built-in magnitude's constants),
and how often random crops reach the edges of the image. Takes a few seconds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "data"


def colourfulness(image: torch.Tensor) -> float:
    """Hasler and Suesstrunk's colourfulness of a (3, H, W) image in [0, 1] (photos: 30-110; grey: 0)."""
    r, g, b = image.double() * 255
    rg, yb = r - g, (r + g) / 2 - b
    return float(torch.hypot(rg.std(), yb.std()) + 0.3 * torch.hypot(rg.mean(), yb.mean()))


def pixel_stats(images: torch.Tensor) -> dict[str, float]:
    """Mean over (N, 3, H, W) images in [0, 1]: pixel std, 1st-99th percentile spread, colourfulness, HF share."""
    from benchmarks.quality import high_frequency_share

    rows = [(float(x.std(dim=(1, 2)).mean()), float(x.quantile(0.99) - x.quantile(0.01)), colourfulness(x),
             high_frequency_share(x)) for x in images]
    return {k: sum(r[i] for r in rows) / len(rows) for i, k in enumerate(("std", "p1_p99", "colour", "hf"))}


def corner_share(raw: torch.Tensor, radius: float) -> tuple[float, float]:
    """(share of the variance, share of the area) within ``radius`` px of the corners of (N, 3, S, S) images."""
    s = raw.shape[-1]
    i = torch.arange(s)
    d = torch.minimum(i, s - i).float()
    near = torch.hypot(d[:, None], d[None, :]) < radius
    v = (raw - raw.mean(dim=(1, 2, 3), keepdim=True)).pow(2)
    return float(v[..., near].sum() / v.sum()), float(near.float().mean())


def crop_coverage(centres: str, box: float, steps: int = 2000, count: int = 8, grid: int = 50) -> tuple[float, float]:
    """How often the outer 10 % ring and the central 20 % square of the image fall inside a crop, per crop."""
    from featviz_cli.transforms import Crops

    crops = Crops(count, box, box, centres=centres)
    gen = torch.Generator().manual_seed(0)
    hits = torch.zeros(grid, grid, dtype=torch.float64)
    u = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
    for _ in range(steps // 10):
        _, m = crops.geometry(1.0, 10, gen)  # crop b: canvas (0,0) -> m[b] @ (0, 0, 1), side m[b, 0, 0]
        x0, y0, side = m[:, 0, 2], m[:, 1, 2], m[:, 0, 0]
        inx = (u[None] >= x0[:, None]) & (u[None] <= (x0 + side)[:, None])
        iny = (u[None] >= y0[:, None]) & (u[None] <= (y0 + side)[:, None])
        hits += (iny[:, :, None] & inx[:, None, :]).double().sum(0)
    hits /= steps // 10 * 10 * count
    ring = (u < 0.1) | (u > 0.9)
    edge = hits[ring[:, None] | ring[None, :]].mean()
    mid = (u > 0.4) & (u < 0.6)
    return float(edge), float(hits[mid[:, None] & mid[None, :]].mean())


def main(argv: list[str] | None = None) -> int:
    from featviz_cli.errors import SpecError
    from featviz_cli.images import list_images, load_image
    from featviz_cli.params.base import to_valid_rgb
    from featviz_cli.params.maco import GAIN, PHASE_STD, MacoImage
    from featviz_cli.params.spectrum import (NATURAL_AMPLITUDES, NATURAL_SLOPES, compute_spectrum, fit_power_law,
                                             natural_magnitude, one_over_f)

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--photos", type=Path, default=PHOTOS, help="Folder of photos (default: tests/data).")
    args = ap.parse_args(argv)
    size = args.size
    try:
        files = list_images(args.photos, field="--photos")  # never empty: it raises instead
    except SpecError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    photos = torch.stack([load_image(p, size) for p in files])
    st = pixel_stats(photos)
    print(f"photos ({len(photos)} in {args.photos}, {size} px): pixel std {st['std']:.3f}, "
          f"1-99 % spread {st['p1_p99']:.2f}, colourfulness {st['colour']:.0f}, HF share {st['hf']:.3f}")
    spectrum = compute_spectrum(args.photos, size)["magnitude"]
    slopes, amps = fit_power_law(spectrum, 2 / 256, 0.4)
    print("photos' spectrum, power law per decorrelated channel (luminance, colour 1, colour 2):")
    print(f"  slopes {', '.join(f'{s:.2f}' for s in slopes)}; amplitudes at 0.1 c/px {', '.join(f'{a:.2f}' for a in amps)}")
    print(f"  built in: slopes {NATURAL_SLOPES}, amplitudes {NATURAL_AMPLITUDES}")
    cpu = torch.device("cpu")
    variants = [
        ("before: 1/f, phase std 1, gain 1", one_over_f(size), 1.0, 1.0),
        ("1/f, phase std pi, gain 1", one_over_f(size), PHASE_STD, 1.0),
        ("natural, phase std pi, gain 1", natural_magnitude(size), PHASE_STD, 1.0),
        (f"now: natural, phase std pi, gain {GAIN}", natural_magnitude(size), PHASE_STD, GAIN),
        (f"photos' spectrum, phase std pi, gain {GAIN}", spectrum, PHASE_STD, GAIN),
    ]
    print(f"random-phase MACO images (8 seeds, {size} px):")
    for name, mag, phase_std, gain in variants:
        image = MacoImage(8, size, mag, generator=torch.Generator().manual_seed(0), device=cpu,
                          phase_std=phase_std, gain=gain)
        with torch.no_grad():
            raw = image.raw()
            st = pixel_stats(to_valid_rgb(raw, decorrelate=True, output="sigmoid"))
        var, area = corner_share(raw, size * 24 / 256)
        print(f"  {name:44s} pixel std {st['std']:.3f}, 1-99 % spread {st['p1_p99']:.2f}, colourfulness "
              f"{st['colour']:3.0f}, HF share {st['hf']:.3f}, variance near the corners {var:.3f} (area {area:.3f})")
    print("random crops: how often a pixel is inside a crop, edge ring (outer 10 %) / centre (central 20 %):")
    for box in (0.5, 0.35, 0.25):
        for centres in ("normal", "uniform"):
            edge, mid = crop_coverage(centres, box)
            print(f"  box {box:.2f}, centres {centres:7s}: edge {edge:.3f}, centre {mid:.3f}, ratio {edge / mid:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
