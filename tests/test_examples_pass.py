"""The pass (featviz_cli/examples/pass_.py): ranking on a known detector, unreadable files, checkpoint and
resume, bounded memory over many images, input errors, and real photos on the default model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from featviz_cli.config import ModelSpec
from featviz_cli.errors import LayerError, SpecError
from featviz_cli.examples.dataset import load_for_network
from featviz_cli.examples.pass_ import collect
from featviz_cli.examples.write import write_examples
from featviz_cli.images import iter_images
from featviz_cli.models import load_model
from featviz_cli.models.preprocess import Preprocess

from conftest import DATA
from examples_fixtures import RED_INFO, RedNet, brute_top_k, make_image, red_folder


def test_red_detector_ranks_the_reddest_first(tmp_path: Path) -> None:
    squares = red_folder(tmp_path / "images")
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


def test_unreadable_files_are_counted_listed_and_not_fatal_with_workers(tmp_path: Path) -> None:
    root = tmp_path / "images"
    squares = red_folder(root)
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
    red_folder(root)
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
    for u in range(2):  # the histograms resume too: the same counts as the pass in one go
        whole, parts = full.layers["blur"].stats.unit(u), resumed.layers["blur"].stats.unit(u)
        assert parts["hist"] == whole["hist"] and parts["count"] == whole["count"] == 12
        assert parts["mean"] == pytest.approx(whole["mean"]) and parts["max"] == whole["max"]

    (root / "aaa_new.png").write_bytes((root / "plain_a.png").read_bytes())  # sorts first: the folder changed
    with pytest.raises(SpecError, match="--restart"):
        collect(RedNet(), RED_INFO, ["blur"], root, k=3, bottom=True, batch_size=2, workers=0, checkpoint=ckpt)
    with pytest.raises(SpecError, match="another pass"):
        collect(RedNet(), RED_INFO, ["blur"], root, k=5, batch_size=2, workers=0, checkpoint=ckpt)


def _brute_force_pass(root: Path, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every image's per-unit maximum and minimum over space, one image at a time, and the top-k/bottom-k
    image indices over all of them: the pass's answer without streaming."""
    net, pre = RedNet().eval(), Preprocess(RED_INFO)
    highs, lows = [], []
    with torch.no_grad():
        for rel in iter_images(root):
            x = torch.from_numpy(load_for_network(root / rel, RED_INFO.input_size)[0].copy()).permute(2, 0, 1)
            act = net(pre(x[None].float() / 255)).flatten(2)[0]  # (units, positions)
            highs.append(act.max(1).values)
            lows.append(act.min(1).values)
    high, low = torch.stack(highs), torch.stack(lows)
    return high, brute_top_k(high, k, True), brute_top_k(low, k, False)


def test_memory_stays_k_per_unit_over_many_images_and_the_ranking_is_the_brute_force_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    root = tmp_path / "images"
    for i in range(90):
        path = root / f"part{i % 3}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (10 + i % 7, 12, 3), dtype=np.uint8)).save(path)
    for rel in list(iter_images(root))[:30]:  # the first 30 files alone
        (tmp_path / "first30" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / rel, tmp_path / "first30" / rel)
    k, units = 3, 2
    states = {}
    for n, folder in ((30, tmp_path / "first30"), (90, root)):
        ckpt = tmp_path / f"c{n}.pt"
        result = collect(RedNet(), RED_INFO, ["blur"], folder, k=k, bottom=True, batch_size=7, workers=0,
                         checkpoint=ckpt, checkpoint_every=10)
        assert result.images_seen == n
        assert len(result.paths) <= 2 * units * k < 30  # only the ranked images' names are kept
        saved = torch.load(ckpt, weights_only=True)
        assert len(saved["paths"]) <= 2 * units * k
        states[n] = {kind: {key: tuple(t.shape) for key, t in saved["layers"]["blur"][kind].items()}
                     for kind in ("top", "bottom")}
        high, top, bottom = _brute_force_pass(folder, k)
        lx = result.layers["blur"]
        assert torch.equal(lx.top.index, top) and torch.equal(lx.bottom.index, bottom)
        assert torch.allclose(lx.top.values, high[top, torch.arange(units)[:, None]], atol=1e-5)
    assert states[30] == states[90] == {kind: {key: (units, k) for key in ("values", "index", "pos")}
                                        for kind in ("top", "bottom")}


def test_bad_folders_and_layers_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="dataset.images.*not a folder"):
        collect(RedNet(), RED_INFO, ["blur"], tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(SpecError, match="dataset.images.*no .jpg"):
        collect(RedNet(), RED_INFO, ["blur"], tmp_path / "empty")
    make_image(tmp_path / "one" / "a.png")
    with pytest.raises(LayerError, match="dataset.layers.*'blr'.*Closest: blur"):
        collect(RedNet(), RED_INFO, ["blr"], tmp_path / "one")


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
    for u, stats in doc["stats"]["units"].items():  # every image counted, the top example its maximum
        assert stats["count"] == 4 and stats["max"] == pytest.approx(doc["units"][u]["top"][0]["activation"])
    sample = doc["units"]["7"]["top"][0]
    with Image.open(files["_blocks.4"].parent / sample["crop"]) as crop:
        crop.load()
        assert max(crop.size) == 128
    assert not list((tmp_path / "out").rglob("*.tmp"))
