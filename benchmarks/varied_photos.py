"""Seven varied colour photos for a MACO magnitude, copied from packages that ship them (no download).

    pip install scikit-image scikit-learn        # not featviz dependencies; only for this
    python -m benchmarks.varied_photos OUT_DIR   # then: featviz spectrum OUT_DIR -o photos7.pt

``tests/data`` holds four photos (astronaut, chelsea, coffee, rocket), mostly blue and brown; a
magnitude made from them gives MACO renders little colour (QUALITY.md). These seven add green,
red and pink scenes: scikit-image's astronaut, chelsea, coffee, motorcycle (left view) and rocket,
scikit-learn's china and flower (their licences: the packages' data READMEs). QUALITY.md's
"photos7" spectrum is ``featviz spectrum`` over exactly these files at the default 256 px.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

SKIMAGE = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg")
SKLEARN = ("china.jpg", "flower.jpg")


def package_photos() -> list[Path]:
    """The seven photos' paths inside the installed scikit-image and scikit-learn (LookupError where missing)."""
    try:
        import skimage
        import sklearn
    except ImportError as e:
        raise LookupError(f"{e.name} is not installed; run 'pip install scikit-image scikit-learn'.") from None
    paths = [Path(skimage.__file__).parent / "data" / n for n in SKIMAGE]
    paths += [Path(sklearn.__file__).parent / "datasets" / "images" / n for n in SKLEARN]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise LookupError(f"not in the installed packages: {', '.join(missing)}.")
    return paths


def main(argv: list[str] | None = None) -> int:
    """Copy the seven photos into the output folder (created), printing each file written; 2 if they are missing."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder to copy the photos into")
    args = ap.parse_args(argv)
    try:
        photos = package_photos()
    except LookupError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for p in photos:
        shutil.copyfile(p, args.out / p.name)
        print(args.out / p.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
