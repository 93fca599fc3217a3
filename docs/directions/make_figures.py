"""Renders and assembles the figures of docs/directions/README.md (beyond single neurons).

    python docs/directions/make_figures.py render --work /tmp/dirfig    # every pass (2-core CPU: ~11 min)
    python docs/directions/make_figures.py render --work /tmp/dirfig --only atlas   # one figure
    python docs/directions/make_figures.py compose --work /tmp/dirfig   # the small files in docs/directions/

``render`` builds a folder of the photos that ship with installed packages (tests/data,
scikit-image, scikit-learn, matplotlib) and runs each pass on the embedded EfficientNet-Lite0
through the library (the same calls as the commands): factors (and their dictionary sweep and
dataset examples), caricatures, an activation grid and an activation atlas. Renders are small
(64-96 px, 48-128 steps) and the network sees them at that size (``resize_to_model: false``) so that
everything fits a CPU. ``compose`` turns the outputs into the committed JPEGs.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any


HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
STEPS = 48
FACTOR_LAYER = "_blocks.6._act1"  # 480 channels after a ReLU6: NMF needs non-negative activations
CARICATURE_LAYERS = ["_blocks.2", "_blocks.5", "_blocks.8", "_blocks.12"]
GRID_LAYER = "_blocks.12"  # 7 x 7 positions at the network's 224 px input
ATLAS_LAYER = "_blocks.10"
# The atlas's cells average many vectors into generic directions; at the default lr (0.02) 48 steps
# leave their renders grey, 128 give them the contrast to read the atlas.
ATLAS_STEPS = 128


def _spec(layer: str, size: int = 64, **rest: Any) -> dict[str, Any]:
    spec = {"model": {"name": "efficientnet_lite0"}, "objective": {"type": "channel", "layer": layer, "unit": 0},
            "param": {"size": size}, "steps": STEPS, "seed": 0, "device": "cpu", "resize_to_model": False,
            "sweep": {"batch": 16}}
    spec.update(rest)
    return spec


def photo_files() -> list[Path]:
    """The photos that ship with the test data and installed packages (see REFERENCE: small real photos)."""
    import matplotlib
    import skimage
    import sklearn

    files = sorted((ROOT / "tests" / "data").glob("*.jpg"))
    sk = Path(skimage.__file__).parent / "data"
    files += [sk / n for n in ("hubble_deep_field.jpg", "retina.jpg", "motorcycle_left.png", "ihc.png", "brick.png",
                               "grass.png", "gravel.png")]
    files += sorted((Path(sklearn.__file__).parent / "datasets" / "images").glob("*.jpg"))
    files.append(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    return [f for f in files if f.is_file()]


def make_photos(folder: Path) -> Path:
    """``folder`` with every photo as an RGB JPEG, at most 320 px on a side."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(photo_files()):
        im = Image.open(f).convert("RGB")
        im.thumbnail((320, 320))
        im.save(folder / f"{i:02d}_{f.stem}.jpg", quality=92)
    return folder


def _factors(work: Path, photos: Path, say: Any) -> None:
    from featviz_cli.config import parse_spec
    from featviz_cli.directions.neuron_groups import run_factors
    from featviz_cli.examples.run import run_examples

    run_factors(parse_spec(_spec(FACTOR_LAYER, 96)), photos, work / "factors", n=8, method="nmf", samples=4000,
                crops=3, maps=4, cossim_pow=1.0, notify=say)
    # dataset examples of the factors' dictionary, beside its sweep (its gallery shows them)
    examples = _spec(FACTOR_LAYER, 96, objective={"type": "direction", "layer": FACTOR_LAYER, "units": "all",
                                                  "vector_file": str(work / "factors" / "factors.npy")},
                     dataset={"images": str(photos), "k": 3, "workers": 0},
                     output={"dir": str(work / "factors" / "renders")})
    run_examples(parse_spec(examples), notify=say)


def _caricatures(work: Path, photos: Path, say: Any) -> None:
    from featviz_cli.config import parse_spec
    from featviz_cli.directions.caricature import run_caricatures

    run_caricatures(parse_spec(_spec(CARICATURE_LAYERS[0], 96, steps=64)), ROOT / "tests" / "data" / "chelsea.jpg",
                    work / "caricature", layers=CARICATURE_LAYERS, cossim_pow=1.0)


def _grid(work: Path, photos: Path, say: Any) -> None:
    from featviz_cli.config import parse_spec
    from featviz_cli.directions.grid import run_grid

    run_grid(parse_spec(_spec(GRID_LAYER, 64)), ROOT / "tests" / "data" / "coffee.jpg", work / "grid", layer=GRID_LAYER,
             cossim_pow=1.0)


def _atlas(work: Path, photos: Path, say: Any) -> None:
    from featviz_cli.config import parse_spec
    from featviz_cli.directions.atlas import run_atlas

    run_atlas(parse_spec(_spec(ATLAS_LAYER, 64, steps=ATLAS_STEPS)), photos, work / "atlas", grid=8, samples=3000,
              crops=6, min_count=10, cossim_pow=1.0, notify=say)


FIGURES = {"factors": _factors, "caricatures": _caricatures, "grid": _grid, "atlas": _atlas}


def render(work: Path, only: list[str] | None = None) -> None:
    """Run the passes of the figures ``only`` (default all) into ``work``, one figure after the other.

    A figure whose passes finished is skipped (``work/times.json`` holds its time); a killed one
    resumes where it stopped (the samples from their checkpoints, the renders unit by unit).
    """
    photos = make_photos(work / "photos")
    times_file = work / "times.json"
    times: dict[str, float] = json.loads(times_file.read_text()) if times_file.is_file() else {}
    for name in only or list(FIGURES):
        if name in times:
            print(f"{name}: done before ({times[name]} s); delete its entry in {times_file} to render it again")
            continue
        t = time.perf_counter()
        print(f"{name}: rendering", flush=True)
        FIGURES[name](work, photos, print)
        times[name] = round(time.perf_counter() - t, 1)
        times_file.write_text(json.dumps(times, indent=1))
        print(f"{name}: {times[name]} s", flush=True)


def _label(im: Any, text: str, width: int) -> Any:
    """``im`` with ``text`` in a white band below it."""
    from PIL import Image, ImageDraw

    band = Image.new("RGB", (width, im.height + 14), "white")
    band.paste(im, (0, 0))
    draw = ImageDraw.Draw(band)
    while text and draw.textlength(text) > width - 4:  # cut what does not fit
        text = text[:-1]
    draw.text((2, im.height + 1), text, fill=(0, 0, 0))
    return band


def _row(images: list[Any], gap: int = 4) -> Any:
    from PIL import Image

    out = Image.new("RGB", (sum(i.width for i in images) + gap * (len(images) - 1), max(i.height for i in images)),
                    "white")
    x = 0
    for im in images:
        out.paste(im, (x, 0))
        x += im.width + gap
    return out


def _column(images: list[Any], gap: int = 4) -> Any:
    from PIL import Image

    out = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images) + gap * (len(images) - 1)),
                    "white")
    y = 0
    for im in images:
        out.paste(im, (0, y))
        y += im.height + gap
    return out


def _open(path: Path, side: int) -> Any:
    from PIL import Image

    return Image.open(path).convert("RGB").resize((side, side), Image.Resampling.LANCZOS)


def compose(work: Path) -> None:
    """The committed figures from ``work``: factors.jpg, caricatures.jpg, grid.jpg, atlas.jpg."""
    side = 80
    fac = work / "factors"
    doc = json.loads((fac / "renders" / "examples" / FACTOR_LAYER / "examples.json").read_text())
    rows = []
    for i in range(8):
        render_png = fac / "renders" / "units" / FACTOR_LAYER / f"{i:05d}.png"
        cells = [_label(_open(render_png, side), f"factor {i}", side)]
        cells += [_label(_open(fac / f"maps/f{i:02d}_i{j:02d}.png", side), "map", side) for j in range(4)]
        top = doc["units"][str(i)]["top"]
        cells += [_label(_open(fac / "renders" / "examples" / FACTOR_LAYER / e["crop"], side),
                         Path(e["source"].split("_", 1)[-1]).stem, side) for e in top[:3]]
        rows.append(_row(cells))
    _column(rows).save(HERE / "factors.jpg", quality=85)

    car = json.loads((work / "caricature" / "caricatures" / "caricatures.json").read_text())
    cells = [_label(_open(work / "caricature" / car["photo_image"], 112), "photo", 112)]
    cells += [_label(_open(work / "caricature" / e["image"], 112), f"{e['layer']} cos {e['similarity']:.2f}", 112)
              for e in car["layers"]]
    _row(cells).save(HERE / "caricatures.jpg", quality=88)

    grid = json.loads((work / "grid" / "grid.json").read_text())
    g = _open(work / "grid" / "grid.png", 336)
    _row([_label(_open(work / "grid" / "photo.png", 336), "photo", 336),
          _label(g, f"{grid['layer']}: {grid['rows']} x {grid['cols']} cells", 336)]).save(HERE / "grid.jpg", quality=85)

    from PIL import Image

    atlas = Image.open(work / "atlas" / "atlas.png").convert("RGB")
    atlas.thumbnail((512, 512))
    atlas.save(HERE / "atlas.jpg", quality=85)
    old = HERE / "caricatures_lite0.png"
    if old.exists():
        old.unlink()
    print("wrote", ", ".join(p.name for p in sorted(HERE.glob("*.jpg"))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["render", "compose", "clean"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/featviz-directions"))
    ap.add_argument("--only", action="append", choices=list(FIGURES), help="render only this figure (repeatable)")
    a = ap.parse_args()
    if a.what == "render":
        render(a.work, a.only)
    elif a.what == "compose":
        compose(a.work)
    else:
        shutil.rmtree(a.work, ignore_errors=True)


if __name__ == "__main__":
    main()
