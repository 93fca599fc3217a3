"""Peak memory of `featviz factors`' and the atlas's sampling as the folder grows (not a timed test).

Each size runs in its own process (peak RSS is per process): a folder of N copies of the test
photos (augmented: flipped and shifted), sampled at a layer of the tiny model (or --model), with
the same reservoir size. The sample holds at most --samples vectors, so the peak must stay flat:
the printed ratio (10x folder / 1x folder) should be close to 1. "every position" is what the
activation vectors of all sampled positions would take (float32): the growth the reservoir avoids,
to read the ratio against (the baseline is mostly torch and scikit-learn themselves).

    python benchmarks/directions_memory.py [--small 40] [--factor 10] [--model test_tiny --layer act3]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


def make_folder(folder: Path, n: int) -> None:
    """``n`` images: the test photos flipped and shifted (distinct files, same statistics)."""
    from PIL import Image, ImageChops

    folder.mkdir(parents=True, exist_ok=True)
    photos = [Image.open(p).convert("RGB").resize((96, 96)) for p in sorted(DATA.glob("*.jpg"))]
    for i in range(n):
        im = ImageChops.offset(photos[i % len(photos)], i % 17, (3 * i) % 13)
        (im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if i % 2 else im).save(folder / f"{i:05d}.jpg", quality=85)


def child(folder: str, model: str, layer: str, samples: int, what: str) -> None:
    """Sample the folder (and factorize, for factors) in this process; print the peak RSS in MiB."""
    from featviz_cli.config import ModelSpec
    from featviz_cli.directions.factors import fit_factors
    from featviz_cli.directions.sample import sample_activations
    from featviz_cli.models import load_model

    net, info = load_model(ModelSpec(name=model, weights="none") if model != "test_tiny" else ModelSpec(name=model))
    s = sample_activations(net, info, layer, folder, size=samples, crops=1, batch_size=16)
    if what == "factors":
        fit_factors(s.vectors, 8, "nmf")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    every = s.positions * s.vectors.shape[1] * 4 / 2 ** 20  # what keeping every position would hold
    print(json.dumps({"images": s.done, "sampled": int(s.vectors.shape[0]), "peak_mib": round(peak, 1),
                      "every_mib": round(every, 1)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=40)
    ap.add_argument("--factor", type=int, default=10)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--model", default="test_tiny")
    ap.add_argument("--layer", default="act3")
    ap.add_argument("--child", nargs=2, metavar=("FOLDER", "WHAT"))
    a = ap.parse_args()
    if a.child:
        child(a.child[0], a.model, a.layer, a.samples, a.child[1])
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = {}
        for n in (a.small, a.small * a.factor):
            folder = Path(tmp) / f"n{n}"
            make_folder(folder, n)
            for what in ("factors", "atlas"):
                res = subprocess.run([sys.executable, __file__, "--child", str(folder), what, "--samples",
                                      str(a.samples), "--model", a.model, "--layer", a.layer],
                                     capture_output=True, text=True, check=True)
                rows[(what, n)] = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{'pass':<8} {'images':>7} {'sampled':>8} {'peak RSS MiB':>13} {'every position MiB':>19}")
        for (what, n), r in rows.items():
            print(f"{what:<8} {r['images']:>7} {r['sampled']:>8} {r['peak_mib']:>13} {r['every_mib']:>19}")
        for what in ("factors", "atlas"):
            ratio = rows[(what, a.small * a.factor)]["peak_mib"] / rows[(what, a.small)]["peak_mib"]
            print(f"{what}: peak RSS ratio {a.factor}x folder / 1x folder = {ratio:.3f}")


if __name__ == "__main__":
    main()
