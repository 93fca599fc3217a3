"""Dataset examples: the folder walk, geometry, streaming top-k, receptive fields, the pass
(ranking, crops, unreadable files, checkpoint/resume, kill and resume), the files and the CLI."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn
import yaml
from PIL import Image
from typer.testing import CliRunner

import featviz_cli
from featviz_cli import cli
from featviz_cli.cli import app
from featviz_cli.config import ModelSpec, load_spec, parse_spec
from featviz_cli.errors import LayerError, SpecError
from featviz_cli.examples import (
    EMPTY,
    Ranking,
    collect,
    iter_images,
    load_for_network,
    receptive_field,
    run_examples,
    view_of,
    write_examples,
)
from featviz_cli.models import ModelInfo, load_model

from conftest import DATA, featviz_cmd

RED_INFO = ModelInfo(name="rednet", input_size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


@pytest.fixture(autouse=True)
def _no_sticky_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli._state, "debug", False)


class RedNet(nn.Module):
    """A known detector: ``red`` channel 0 is R - (G + B) / 2, channel 1 its negation; ``blur`` averages 5x5, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.red = nn.Conv2d(3, 2, 1, bias=False)
        self.red.weight.data.copy_(torch.tensor([[1.0, -0.5, -0.5], [-1.0, 0.5, 0.5]]).view(2, 3, 1, 1))
        self.blur = nn.Conv2d(2, 2, 5, stride=2, padding=2, groups=2, bias=False)
        self.blur.weight.data.fill_(1 / 25)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur(self.red(x))


def _image(path: Path, size: tuple[int, int] = (96, 64), square: tuple[int, int, int] | None = None,
           colour: tuple[int, int, int] = (255, 0, 0), background: tuple[int, int, int] = (90, 110, 120),
           seed: int = 0) -> None:
    """A greyish noisy image, optionally with a ``colour`` square (x, y, side) in it."""
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(background)[None, None] + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255)
    if square is not None:
        x, y, s = square
        arr[y : y + s, x : x + s] = colour
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)


def _red_folder(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """Twelve 96x64 images: red squares of decreasing redness at known places, two plain, one cyan.

    The network sees the centre 64x64 of each (x 16..80 in the image). Returns
    ``{file: (redness, x, y, side)}`` for the images with a square.
    """
    squares = {}
    reds = [250, 120, 230, 90, 200, 170, 60, 140, 30]
    for i, red in enumerate(reds):
        x, y = 20 + (i * 7) % 40, 4 + (i * 11) % 40
        name = f"img_{(i * 5) % 9:02d}.png"  # file order is not the ranking order
        _image(root / name, square=(x, y, 18), colour=(red, 0, 0), seed=i)
        squares[name] = (red, x, y, 18)
    _image(root / "plain_a.png", seed=20)
    _image(root / "sub" / "plain_b.png", seed=21)
    _image(root / "sub" / "cyan.png", square=(40, 20, 18), colour=(0, 255, 255), seed=22)
    return squares


# ---------------------------------------------------------------- the folder and geometry


def test_iter_images_is_recursive_sorted_and_case_insensitive(tmp_path: Path) -> None:
    for name in ["b.JPG", "a.png", "sub/c.webp", "sub/deeper/d.JpEg", ".hidden.jpg", "notes.txt", ".cache/e.jpg",
                 "sub/f.gif"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert list(iter_images(tmp_path)) == ["a.png", "b.JPG", "sub/c.webp", "sub/deeper/d.JpEg"]


def test_view_resizes_the_shorter_side_and_takes_the_centre() -> None:
    view = view_of(400, 300, 32)
    assert view.resized == (43, 32)
    x0, y0, x1, y1 = view.seen
    assert (y0, y1) == (0, 300)
    assert x1 - x0 == pytest.approx(300, abs=10)
    assert x0 == pytest.approx(400 - x1, abs=400 / 43 + 1e-6)  # centred to a resized pixel
    assert view_of(50, 80, 10).to_source((0, 0, 10, 10)) == (0.0, 15.0, 50.0, 65.0)


def test_load_for_network_takes_the_centre_crop_upright(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    Image.fromarray(arr).save(tmp_path / "lr.png")
    out, size = load_for_network(tmp_path / "lr.png", 10)
    assert size == (40, 20) and out.shape == (10, 10, 3)
    assert tuple(out[5, 1]) == (255, 0, 0) and tuple(out[5, 8]) == (0, 0, 255)
    # A JPEG stored sideways with EXIF orientation 6 (rotate 90 degrees clockwise to view): red is on top.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out, size = load_for_network(tmp_path / "rot.jpg", 10)
    assert size == (20, 40)
    assert out[1, 5, 0] > 200 > out[1, 5, 2] and out[8, 5, 2] > 200 > out[8, 5, 0]


# ---------------------------------------------------------------- streaming top-k


def _brute(values: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    """Per unit, the indices of the best k images, ties to the earlier image."""
    out = []
    for u in range(values.shape[1]):
        keyed = sorted(range(values.shape[0]), key=lambda i: ((-1 if largest else 1) * float(values[i, u]), i))
        out.append(keyed[:k])
    return torch.tensor(out)


@pytest.mark.parametrize("largest", [True, False])
def test_ranking_merges_batches_like_one_sort(largest: bool) -> None:
    g = torch.Generator().manual_seed(0)
    values = torch.randint(0, 5, (20, 3), generator=g).float()  # many ties
    values[4, 1] = float("nan")
    pos = torch.randint(0, 9, (20, 3), generator=g)
    expected = _brute(torch.nan_to_num(values, nan=-1e9 if largest else 1e9), 4, largest)
    for splits in ([20], [7, 1, 12], [1] * 20):
        r = Ranking.empty(3, 4, largest)
        start = 0
        for n in splits:
            r = r.merge(values[start : start + n], pos[start : start + n], torch.arange(start, start + n))
            start += n
        assert torch.equal(r.index, expected)
        assert torch.equal(r.values, values[r.index, torch.arange(3)[:, None]])
        assert torch.equal(r.pos, pos[r.index, torch.arange(3)[:, None]])


def test_ranking_with_fewer_images_than_k_has_empty_slots() -> None:
    r = Ranking.empty(2, 5).merge(torch.ones(2, 2), torch.zeros(2, 2, dtype=torch.long), torch.tensor([0, 1]))
    assert r.index[:, :2].tolist() == [[0, 1], [0, 1]] and (r.index[:, 2:] == EMPTY).all()


# ---------------------------------------------------------------- receptive field


def test_receptive_field_of_known_convolutions() -> None:
    net = nn.Sequential(nn.Conv2d(3, 1, 5, padding=2), nn.Conv2d(1, 1, 3, stride=2, padding=1))
    for m in net:
        m.weight.data.fill_(1.0)
    info = ModelInfo(name="convs", input_size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    rf = receptive_field(net, info, "1", mass=1.0)
    assert rf.full == 7 and rf.size == 7 and rf.stride == (2.0, 2.0) and rf.map_size == (16, 16)
    # Unit (y=8, x=8) sees input rows/cols 13..19 (5x5 then 3x3 at stride 2): centre 16.5 in pixel-centre terms.
    assert rf.box(8, 8) == (13.0, 13.0, 20.0, 20.0)
    assert rf.box(0, 0) == (0.0, 0.0, 4.0, 4.0)  # clipped at the border
    smaller = receptive_field(net, info, "1", mass=0.5)
    assert smaller.size < 7 and smaller.full == 7
    assert all(p.grad is None for p in net.parameters())


def test_receptive_field_is_none_without_a_spatial_map(tiny_model) -> None:
    model, info = tiny_model
    assert receptive_field(model, info, "fc") is None


# ---------------------------------------------------------------- the pass on a known detector


def test_red_detector_ranks_the_reddest_first_and_crops_land_on_the_red(tmp_path: Path) -> None:
    squares = _red_folder(tmp_path / "images")
    result = collect(RedNet(), RED_INFO, ["blur"], tmp_path / "images", k=4, bottom=True, batch_size=5, workers=0)
    lx = result.layers["blur"]
    assert lx.shape == (2, 16, 16) and result.images_seen == 12 and result.unreadable == 0
    top = [result.paths[int(i)] for i in lx.top.index[0]]
    by_redness = sorted(squares, key=lambda n: -squares[n][0])
    assert top == by_redness[:4]
    assert lx.top.values[0].tolist() == sorted(lx.top.values[0].tolist(), reverse=True)
    assert result.paths[int(lx.top.index[1, 0])] == "sub/cyan.png"  # the negated detector
    assert result.paths[int(lx.bottom.index[0, 0])] == "sub/cyan.png"  # most negative redness
    assert len(result.paths) <= 2 * 2 * 4  # memory: only the ranked images' names are kept

    files = write_examples(result, tmp_path / "out")
    doc = json.loads(files["blur"].read_text())
    layer_dir = files["blur"].parent
    assert layer_dir == tmp_path / "out" / "examples" / "blur"
    assert {"layer", "model", "k", "images_seen", "unreadable", "units"} <= set(doc)
    assert doc["layer"] == "blur" and doc["model"] == "rednet" and doc["k"] == 4 and doc["images_seen"] == 12
    entries = doc["units"]["0"]["top"]
    assert [e["source"] for e in entries] == by_redness[:4] and [e["rank"] for e in entries] == [0, 1, 2, 3]
    assert set(doc["units"]["0"]) == {"top", "bottom"}
    for e in entries:
        assert {"rank", "source", "activation", "x", "y", "full", "crop"} <= set(e)
        _, sx, sy, side = squares[e["source"]]
        x0, y0, x1, y1 = e["box"]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        assert sx <= cx <= sx + side and sy <= cy <= sy + side, (e, squares[e["source"]])
        inter = max(0, min(x1, sx + side) - max(x0, sx)) * max(0, min(y1, sy + side) - max(y0, sy))
        assert inter >= 0.8 * (x1 - x0) * (y1 - y0)
        with Image.open(layer_dir / e["crop"]) as crop:
            rgb = np.asarray(crop.convert("RGB"), dtype=float).mean((0, 1))
            assert crop.format == "PNG" and max(crop.size) == 128
        assert rgb[0] > 2 * (rgb[1] + rgb[2]) + 10, rgb  # the crop is red
        with Image.open(layer_dir / e["full"]) as full:
            assert full.format == "JPEG" and full.size == (96, 64)
            marked = np.asarray(full.convert("RGB")).astype(int)
        # the box is drawn in yellow around the square
        assert (np.abs(marked - [255, 214, 0]).sum(-1) < 90).sum() > 20
    page = (layer_dir / "index.html").read_text()
    for unit in doc["units"].values():
        for kind in unit.values():
            for e in kind:
                assert f"src='{e['crop']}'" in page and f"href='{e['full']}'" in page
    assert "blur" in (tmp_path / "out" / "examples" / "index.html").read_text()


def test_unreadable_files_are_counted_listed_and_not_fatal_with_workers(tmp_path: Path) -> None:
    root = tmp_path / "images"
    squares = _red_folder(root)
    (root / "broken.png").write_bytes(b"\x89PNG not really")
    (root / "empty.webp").write_bytes(b"")
    good = (root / "sub" / "cyan.png").read_bytes()
    (root / "sub" / "truncated.png").write_bytes(good[: len(good) // 2])
    base = collect(RedNet(), RED_INFO, ["blur"], root, k=3, batch_size=4, workers=0)
    assert base.unreadable == 3 and base.images_seen == 12 and base.files == 15
    assert sorted(f["source"] for f in base.unreadable_files) == ["broken.png", "empty.webp", "sub/truncated.png"]
    assert all(f["error"] for f in base.unreadable_files)
    top = [base.paths[int(i)] for i in base.layers["blur"].top.index[0]]
    assert top == sorted(squares, key=lambda n: -squares[n][0])[:3]
    other = collect(RedNet(), RED_INFO, ["blur"], root, k=3, batch_size=3, workers=2)  # worker processes
    for a, b in ((base.layers["blur"].top, other.layers["blur"].top),):
        assert torch.equal(a.index, b.index) and torch.equal(a.pos, b.pos) and torch.allclose(a.values, b.values)
    assert other.unreadable_files == base.unreadable_files


def test_interrupted_pass_resumes_to_the_same_result(tmp_path: Path) -> None:
    root = tmp_path / "images"
    _red_folder(root)
    full = collect(RedNet(), RED_INFO, ["blur"], root, k=3, bottom=True, batch_size=2, workers=0)
    ckpt = tmp_path / "state" / "checkpoint.pt"

    def interrupt(done: int, total: int, rate: float) -> None:
        if done >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect(RedNet(), RED_INFO, ["blur"], root, k=3, bottom=True, batch_size=2, workers=0, checkpoint=ckpt,
                checkpoint_every=100, progress=interrupt)
    assert torch.load(ckpt, weights_only=True)["done"] == 6
    messages: list[str] = []
    resumed = collect(RedNet(), RED_INFO, ["blur"], root, k=3, bottom=True, batch_size=2, workers=0,
                      checkpoint=ckpt, checkpoint_every=100, notify=messages.append)
    assert resumed.resumed_from == 6 and "6 of 12" in messages[0]
    for a, b in ((full.layers["blur"].top, resumed.layers["blur"].top),
                 (full.layers["blur"].bottom, resumed.layers["blur"].bottom)):
        assert torch.equal(a.index, b.index) and torch.equal(a.pos, b.pos) and torch.equal(a.values, b.values)
    assert resumed.paths == full.paths and resumed.images_seen == 12

    (root / "aaa_new.png").write_bytes((root / "plain_a.png").read_bytes())  # sorts first: the folder changed
    with pytest.raises(SpecError, match="--restart"):
        collect(RedNet(), RED_INFO, ["blur"], root, k=3, bottom=True, batch_size=2, workers=0, checkpoint=ckpt)
    with pytest.raises(SpecError, match="another pass"):
        collect(RedNet(), RED_INFO, ["blur"], root, k=5, batch_size=2, workers=0, checkpoint=ckpt)


def test_bad_folders_and_layers_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="dataset.images.*not a folder"):
        collect(RedNet(), RED_INFO, ["blur"], tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(SpecError, match="dataset.images.*no .jpg"):
        collect(RedNet(), RED_INFO, ["blur"], tmp_path / "empty")
    _image(tmp_path / "one" / "a.png")
    with pytest.raises(LayerError, match="dataset.layers.*'blr'.*Closest: blur"):
        collect(RedNet(), RED_INFO, ["blr"], tmp_path / "one")


# ---------------------------------------------------------------- the spec and the CLI


def test_dataset_section_validates_and_is_in_the_schema(tiny_spec: dict) -> None:
    spec = parse_spec({**tiny_spec, "dataset": {"images": "photos", "k": 4, "bottom": True}})
    assert (spec.dataset.images, spec.dataset.k, spec.dataset.bottom, spec.dataset.workers) == ("photos", 4, True, 2)
    with pytest.raises(SpecError, match="dataset.k: must be >= 1"):
        parse_spec({**tiny_spec, "dataset": {"k": 0}})
    with pytest.raises(SpecError, match="dataset.imgs: unknown key. Did you mean 'images'"):
        parse_spec({**tiny_spec, "dataset": {"imgs": "x"}})
    from featviz_cli.config import json_schema

    props = json_schema()["properties"]["dataset"]["properties"]
    assert {"images", "k", "bottom", "layers", "batch_size", "workers", "checkpoint_every", "rf_mass"} <= set(props)


def _spec_file(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_cli_examples_writes_pages_and_resumes(tmp_path: Path, tiny_spec: dict) -> None:
    _red_folder(tmp_path / "images")
    (tmp_path / "images" / "bad.jpg").write_bytes(b"nope")
    spec = _spec_file(tmp_path, {**tiny_spec, "objective": {"type": "channel", "layer": "act2", "unit": 3}})
    args = ["examples", str(spec), "--images", str(tmp_path / "images"), "--out", str(tmp_path / "out"),
            "--k", "2", "--workers", "0", "--batch-size", "4", "--set", "dataset.layers=[act1, act3]"]
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    pages = first.stdout.split()
    assert pages == [str(tmp_path / "out" / "examples" / name / "index.html") for name in ("act1", "act3")]
    docs = {name: json.loads((tmp_path / "out" / "examples" / name / "examples.json").read_text())
            for name in ("act1", "act3")}
    assert len(docs["act1"]["units"]) <= 8 and docs["act3"]["activation_shape"] == [32, 8, 8]
    assert docs["act1"]["unreadable"] == 1 and docs["act1"]["images_seen"] == 12
    assert "Ranked 12 image(s) for 2 layer(s) (1 unreadable), at" in first.stderr
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "resuming from" in again.stderr and "13 of 13 images" in again.stderr
    assert "(1 unreadable), all from the checkpoint" in again.stderr
    assert json.loads((tmp_path / "out" / "examples" / "act3" / "examples.json").read_text()) == docs["act3"]


def test_cli_examples_input_errors(tmp_path: Path, tiny_spec: dict) -> None:
    runner = CliRunner()
    spec = _spec_file(tmp_path, tiny_spec)
    result = runner.invoke(app, ["examples", str(spec), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "dataset.images: no image folder; give --images DIR" in result.stderr
    result = runner.invoke(app, ["examples", str(spec), "--images", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a folder" in result.stderr
    _image(tmp_path / "imgs" / "a.png")
    result = runner.invoke(app, ["examples", str(spec), "--images", str(tmp_path / "imgs"), "--out",
                                 str(tmp_path / "o"), "--set", "dataset.layers=[act9]"])
    assert result.exit_code == 2 and "dataset.layers: no layer 'act9'" in result.stderr


# ---------------------------------------------------------------- real photos on the default model


def test_real_photos_on_efficientnet_lite0_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "more").mkdir(parents=True)
    for name in ("coffee.jpg", "chelsea.jpg"):
        shutil.copy(DATA / name, root / name)
    for name in ("astronaut.jpg", "rocket.jpg"):
        shutil.copy(DATA / name, root / "more" / name.upper())
    (root / "more" / "corrupt.jpg").write_bytes((DATA / "coffee.jpg").read_bytes()[:3000])
    model, info = load_model(ModelSpec(name="efficientnet_lite0"))
    result = collect(model, info, ["_blocks.4", "_fc"], root, k=2, batch_size=3, workers=1)
    assert result.images_seen == 4 and result.unreadable == 1
    assert result.unreadable_files[0]["source"] == "more/corrupt.jpg"
    logits = result.layers["_fc"]
    assert logits.shape == (1000, 1) and logits.rf is None
    first = {c: result.paths[int(logits.top.index[c, 0])] for c in (967, 281, 282)}  # espresso, tabby, tiger cat
    assert first == {967: "coffee.jpg", 281: "chelsea.jpg", 282: "chelsea.jpg"}

    lx = result.layers["_blocks.4"]
    assert lx.shape == (40, 28, 28) and lx.rf.stride == (8.0, 8.0) and 9 < lx.rf.size < lx.rf.full <= 224
    only_block = type(result)(**{**result.__dict__, "layers": {"_blocks.4": lx}})
    files = write_examples(only_block, tmp_path / "out", workers=1, model_name="efficientnet_lite0")
    doc = json.loads(files["_blocks.4"].read_text())
    assert len(doc["units"]) == 40 and doc["unreadable"] == 1 and doc["model"] == "efficientnet_lite0"
    for unit in doc["units"].values():
        assert list(unit) == ["top"] and len(unit["top"]) == 2
        assert unit["top"][0]["activation"] >= unit["top"][1]["activation"]
        for e in unit["top"]:
            assert 0 <= e["x"] < 28 and 0 <= e["y"] < 28
            x0, y0, x1, y1 = e["box"]
            assert 0 <= x0 < x1 <= e["width"] and 0 <= y0 < y1 <= e["height"]
    sample = doc["units"]["7"]["top"][0]
    with Image.open(files["_blocks.4"].parent / sample["crop"]) as crop:
        crop.load()
        assert max(crop.size) == 128
    assert not list((tmp_path / "out").rglob("*.tmp"))


# ---------------------------------------------------------------- kill and resume, in processes

SLOW_MODEL = '''
import time
import torch
import torch.nn as nn


class Slow(nn.Module):
    """A tiny convnet that takes 40 ms per forward, so a pass can be killed half-way."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.act = nn.ReLU()
        self.featviz_info = {"input_size": 16, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}

    def forward(self, x):
        time.sleep(0.04)
        return self.act(self.conv(x))


def build():
    torch.manual_seed(0)
    return Slow()
'''


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(featviz_cli.__file__).parent.parent),
                                                      env.get("PYTHONPATH")]))
    return env


def _tree(directory: Path) -> dict[str, str]:
    """sha256 of every file under a layer directory."""
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_sigkill_mid_pass_then_rerun_gives_the_uninterrupted_result(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "slowmodel.py").write_text(SLOW_MODEL)
    rng = np.random.default_rng(0)
    for i in range(120):
        path = tmp_path / "images" / f"part{i // 50}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(path)
    spec = _spec_file(tmp_path, {"model": {"name": "slow", "python": "slowmodel:build"},
                                 "objective": {"type": "channel", "layer": "act", "unit": 0}, "device": "cpu",
                                 "dataset": {"k": 3, "bottom": True, "workers": 1, "batch_size": 4,
                                             "checkpoint_every": 8}})

    def command(out: str) -> list[str]:
        return featviz_cmd() + ["examples", str(spec), "--images", str(tmp_path / "images"), "--out",
                                str(tmp_path / out), "--quiet"]

    def checkpoint_done(out: str) -> int:
        found = list((tmp_path / out / "examples").glob("checkpoint-*.pt"))
        return int(torch.load(found[0], weights_only=True)["done"]) if found else -1

    done_at_kill = []
    for _ in range(2):  # kill it twice, each time after it has made progress past the last checkpoint
        before = checkpoint_done("killed")
        proc = subprocess.Popen(command("killed"), cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while checkpoint_done("killed") <= before + 8 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
        done_at_kill.append(checkpoint_done("killed"))
    assert 0 < done_at_kill[0] < done_at_kill[1] < 120, done_at_kill
    assert not (tmp_path / "killed" / "examples" / "act" / "examples.json").exists()

    resumed = subprocess.run(command("killed")[:-1], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done_at_kill[1]} of 120 images already done" in resumed.stderr
    monkeypatch.chdir(tmp_path)  # the uninterrupted pass, in this process
    straight = load_spec(spec, ["output.dir=straight", f"dataset.images={tmp_path / 'images'}"])
    assert run_examples(straight)[0].resumed_from == 0
    killed_dir, straight_dir = (tmp_path / d / "examples" / "act" for d in ("killed", "straight"))
    doc = json.loads((killed_dir / "examples.json").read_text())
    assert doc["images_seen"] == 120 and len(doc["units"]) == 4
    assert doc == json.loads((straight_dir / "examples.json").read_text())
    assert _tree(killed_dir) == _tree(straight_dir)
    assert not list((tmp_path / "killed").rglob("*.tmp"))


class Tokens(nn.Module):
    """(B, C, H, W) -> (B, H*W, C): a layer of tokens, as vision transformers have."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


def test_token_layers_rank_by_token_and_show_the_whole_image(tmp_path: Path) -> None:
    squares = _red_folder(tmp_path / "images")
    net = nn.Sequential(RedNet(), Tokens())
    result = collect(net, RED_INFO, ["1"], tmp_path / "images", k=2, batch_size=6, workers=0)
    lx = result.layers["1"]
    assert lx.shape == (2, 256) and lx.rf is None
    assert result.paths[int(lx.top.index[0, 0])] == max(squares, key=lambda n: squares[n][0])
    doc = json.loads(write_examples(result, tmp_path / "out")["1"].read_text())
    best = doc["units"]["0"]["top"][0]
    assert best["y"] == 0 and best["x"] == int(lx.top.pos[0, 0])
    assert best["box"] == [16, 0, 80, 64]  # the whole part of the image the network saw
    assert doc["receptive_field"] is None


def test_spec_layers_default_to_the_objective(tiny_spec: dict) -> None:
    from featviz_cli.examples import spec_layers
    from featviz_cli.hooks import OUTPUT

    terms = [{"type": "channel", "layer": "act2", "unit": 1}, {"type": "logit", "unit": 3},
             {"type": "channel", "layer": "act2", "unit": 2}]
    assert spec_layers(parse_spec({**tiny_spec, "objective": terms})) == ["act2", OUTPUT]
    spec = parse_spec({**tiny_spec, "dataset": {"layers": ["act1"]}})
    assert spec_layers(spec) == ["act1"]


def test_render_with_a_dataset_section_also_writes_the_examples(tmp_path: Path, tiny_spec: dict) -> None:
    _red_folder(tmp_path / "images")
    spec = _spec_file(tmp_path, {**tiny_spec, "dataset": {"images": str(tmp_path / "images"), "k": 2,
                                                            "workers": 0}})
    result = CliRunner().invoke(app, ["render", str(spec), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(tmp_path / "out" / "grid.png"),
                                     str(tmp_path / "out" / "examples" / "act2" / "index.html")]
    doc = json.loads((tmp_path / "out" / "examples" / "act2" / "examples.json").read_text())
    assert doc["images_seen"] == 12 and len(doc["units"]["3"]["top"]) == 2
    assert (tmp_path / "out" / "meta.json").exists()


def test_a_sweep_spec_gives_examples_for_all_its_layers(tmp_path: Path, tiny_spec: dict) -> None:
    from featviz_cli.examples import spec_layers

    data = {**tiny_spec, "objective": {"type": "channel", "layer": ["act1", "act3"], "units": "all"}}
    assert spec_layers(parse_spec(data)) == ["act1", "act3"]
    _red_folder(tmp_path / "images")
    spec = _spec_file(tmp_path, data)
    result = CliRunner().invoke(app, ["examples", str(spec), "--images", str(tmp_path / "images"), "--out",
                                      str(tmp_path / "atlas"), "--k", "1", "--workers", "0", "-q"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.split()) == 2
