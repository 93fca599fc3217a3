"""featviz_cli/cli_directions.py: factors, caricature, grid and activation-atlas through the CLI runner."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from featviz_cli.cli import app

from conftest import DATA

SPEC = ("model: {name: test_tiny}\nobjective: {type: channel, layer: LAYER, unit: 0}\n"
        "param: {size: 16}\nsteps: 2\ndevice: cpu\n")


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, str]:
    """Spec files (act3, the logits fc, the pooled vector pool, the pre-ReLU conv3), folders and files."""
    paths = {}
    for layer in ("act3", "fc", "pool", "conv3"):
        path = tmp_path / f"{layer}.yaml"
        path.write_text(SPEC.replace("LAYER", layer))
        paths[layer] = str(path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("not an image")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.jpg").write_text("not a jpeg")
    (tmp_path / "broken" / "b.png").write_bytes(b"\x89PNG, truncated")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "fake.jpg").write_text("not a jpeg")
    files = {"notes": "notes.txt", "fake": "fake.jpg", "nope_jpg": "nope.jpg", "nope": "nope"}
    return {**paths, "data": str(DATA), "photo": str(DATA / "chelsea.jpg"),
            **{k: str(tmp_path / k) for k in ("empty", "texts", "broken")},
            **{k: str(tmp_path / name) for k, name in files.items()}}


# (command line with {names} of ``inputs``, the start of the one error line)
BAD = {
    "factors: logits": ("factors {fc} --images {data}", "Error: objective.layer: layer 'fc' has no spatial map (its "
                        "activations are (10,)); choose a convolutional layer before the pooling"),
    "factors: pooled": ("factors {pool} --images {data}", "Error: objective.layer: layer 'pool' has no spatial map "
                        "(its activations are (32, 1, 1))"),
    "factors: --n over channels": ("factors {act3} --images {data} --n 40",
                                   "Error: --n: 40 factors for layer 'act3' with 32 channels; ask for at most 32."),
    "factors: --n 0": ("factors {act3} --images {data} --n 0", "Error: --n: must be >= 1, got 0."),
    "factors: --n over the sample": ("factors {act3} --images {data} --n 20 --samples 10",
                                     "Error: --n: 20 factors from at most 10 sampled positions (4 image(s), 0 crop(s) "
                                     "each, 8 x 8 positions, --samples 10); sample more"),
    "factors: bad method": ("factors {act3} --images {data} --method svd",
                            "Error: --method: 'svd' is not one of nmf, pca, ica."),
    "factors: nmf before a relu": ("factors {conv3} --images {data} --n 3", "Error: --method: NMF needs non-negative "
                                   "activations, but layer 'conv3' goes down to -"),
    "factors: empty folder": ("factors {act3} --images {empty}", "Error: --images: {empty}: no .jpg/"),
    "factors: folder of texts": ("factors {act3} --images {texts}", "Error: --images: {texts}: no .jpg/"),
    "factors: unreadable images": ("factors {act3} --images {broken}", "Error: --images: {broken}: none of its 2 "
                                   "image files can be read (first: a.jpg: UnidentifiedImageError"),
    "factors: missing folder": ("factors {act3} --images {nope}", "Error: --images: {nope}: not a folder"),
    "factors: a file for the folder": ("factors {act3} --images {notes}", "Error: --images: {notes}: not a "
                                       "folder"),
    "caricature: logits": ("caricature {act3} --image {photo} --layers act3,fc", "Error: --layers: layer 'fc' has no "
                           "spatial map or tokens to match (its activations are (10,))"),
    "caricature: the spec's logits": ("caricature {fc} --image {photo}", "Error: --layers: layer 'fc' has no spatial "
                                      "map"),
    "caricature: unknown layer": ("caricature {act3} --image {photo} --layers act2,nope",
                                  "Error: --layers: no layer 'nope' in this model."),
    "caricature: no layer": ("caricature {act3} --image {photo} --layers ,", "Error: --layers: no layer to "
                             "caricature"),
    "caricature: missing photo": ("caricature {act3} --image {nope_jpg}", "Error: --image: {nope_jpg}: no such file"),
    "caricature: a folder for the photo": ("caricature {act3} --image {data}", "Error: --image: {data}: a folder; "
                                           "give the photo"),
    "caricature: not an image": ("caricature {act3} --image {notes}", "Error: --image: {notes}: cannot read "
                                 "an image"),
    "caricature: a text named .jpg": ("caricature {act3} --image {fake}", "Error: --image: {fake}: cannot read "
                                      "an image"),
    "grid: logits": ("grid {act3} --image {photo} --layer fc", "Error: --layer: layer 'fc' has no spatial map"),
    "grid: pooled": ("grid {pool} --image {photo}", "Error: --layer: layer 'pool' has no spatial map (its activations "
                     "are (32, 1, 1))"),
    "grid: unknown layer": ("grid {act3} --image {photo} --layer nope", "Error: --layer: no layer 'nope'"),
    "grid: missing photo": ("grid {act3} --image {nope_jpg}", "Error: --image: {nope_jpg}: no such file"),
    "grid: not an image": ("grid {act3} --image {notes}", "Error: --image: {notes}: cannot read an image"),
    "grid: a text named .jpg": ("grid {act3} --image {fake}", "Error: --image: {fake}: cannot read an image"),
    "atlas: logits": ("activation-atlas {fc} --images {data}", "Error: objective.layer: layer 'fc' has no spatial map"),
    "atlas: pooled": ("activation-atlas {pool} --images {data}", "Error: objective.layer: layer 'pool' has no spatial "
                      "map"),
    "atlas: logits with a class": ("activation-atlas {fc} --images {data} --class 1", "Error: objective.layer: layer "
                                   "'fc' has no spatial map"),
    "atlas: empty folder": ("activation-atlas {act3} --images {empty}", "Error: --images: {empty}: no .jpg/"),
    "atlas: unreadable images": ("activation-atlas {act3} --images {broken}", "Error: --images: {broken}: none of its "
                                 "2 image files can be read"),
    "atlas: missing folder": ("activation-atlas {act3} --images {nope}", "Error: --images: {nope}: not a folder"),
    "atlas: unknown class": ("activation-atlas {act3} --images {data} --class nope",
                             "Error: --class: no class named 'nope'"),
    "atlas: class out of range": ("activation-atlas {act3} --images {data} --class 99",
                                  "Error: --class: class 99 is out of range: the model has 10 outputs (0..9)."),
    "atlas: bad layout": ("activation-atlas {act3} --images {data} --layout pca",
                          "Error: --layout: 'pca' is not auto, umap or tsne."),
    "atlas: --min-count over --samples": ("activation-atlas {act3} --images {data} --min-count 60 --samples 50",
                                          "Error: --min-count: 60 points per cell from a sample of 50 (--samples) "
                                          "cannot be; lower --min-count or raise --samples."),
    "atlas: --min-count over the positions": ("activation-atlas {act3} --images {data} --min-count 300",
                                              "Error: --min-count: 300 points per cell, but 4 image(s) of 8 x 8 "
                                              "positions with 0 crop(s) each give at most 256"),
}


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and mtime."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_error_line_exit_2_and_writes_nothing(case: str, inputs: dict[str, str],
                                                                tmp_path: Path) -> None:
    line, message = BAD[case]
    out = tmp_path / "out" / "new"
    args = [a.format(**inputs) for a in line.split()] + ["--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (args, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.format(**inputs)), (args, lines)
    assert not (tmp_path / "out").exists(), args  # not even the parent
    # into a directory that holds a finished pass: the same error, and the directory is left as it was
    kept = tmp_path / "kept"
    (kept / "sub").mkdir(parents=True)
    (kept / "sub" / "index.html").write_text("an earlier pass")
    before = _tree(kept)
    again = CliRunner().invoke(app, args[:-1] + [str(kept)])
    assert again.exit_code == 2 and again.stderr.strip().splitlines() == lines, args
    assert _tree(kept) == before, args


def test_a_factor_count_over_the_readable_positions_keeps_the_sample_and_says_so(tmp_path: Path) -> None:
    """Found only after the pass (one of two images unreadable): the sample stays, the rerun reuses it."""
    spec = tmp_path / "wide.yaml"
    spec.write_text(SPEC.replace("LAYER", "act3").replace("{name: test_tiny}", "{name: test_tiny, kwargs: {width: 32}}"))
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes((DATA / "chelsea.jpg").read_bytes())
    (photos / "b.jpg").write_text("not a jpeg")
    out = tmp_path / "f"
    args = ["factors", str(spec), "--images", str(photos), "--out", str(out)]
    result = CliRunner().invoke(app, args + ["--n", "100"])
    assert result.exit_code == 2, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: --n: 100 factors from 64 sampled positions; sample more") and \
        last.endswith(f"(the sample stays in {out.resolve()}; the rerun reuses it.)"), last
    assert "1 unreadable image(s) skipped: b.jpg (UnidentifiedImageError" in result.stderr
    assert [p.name for p in out.iterdir()] == [next(out.glob("sample-*.pt")).name]
    rerun = CliRunner().invoke(app, args + ["--n", "3", "--no-render"])
    assert rerun.exit_code == 0, rerun.output
    assert "already sampled" in rerun.stderr and np.load(out / "factors.npy").shape == (3, 128)


def test_featviz_factors_writes_the_matrix_the_maps_and_the_page(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("model: {name: test_tiny}\nobjective: {type: channel, layer: act3, unit: 0}\n"
                    "param: {size: 16}\nsteps: 2\ndevice: cpu\nsweep: {batch: 8}\n")
    data = str(Path(__file__).parent / "data")
    result = CliRunner().invoke(app, ["factors", str(spec), "--images", data, "--n", "3", "--maps", "2", "-q",
                                      "--out", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "f"
    assert result.stdout.strip() == str(out.resolve() / "index.html")
    assert np.load(out / "factors.npy").shape == (3, 32)
    assert sorted(p.name for p in (out / "maps").iterdir()) == [f"f{i:02d}_i{j:02d}.png" for i in range(3)
                                                                for j in range(2)]
    page = (out / "index.html").read_text()
    assert page.count('src="renders/units/act3/') == 3 and page.count('src="maps/') == 6
    for i in range(3):  # each render links to its page in the renders' gallery
        assert f'href="renders/gallery/act3/unit_{i:05d}.html"' in page and (out / "renders" / "gallery" / "act3" /
                                                                             f"unit_{i:05d}.html").is_file()
    assert json.loads((out / "renders" / "manifest.json").read_text())["done"] == 3
