"""Writing the examples (featviz_cli/examples/write.py): crops and marked whole images, examples.json, the pages,
and a rewrite that redoes exactly the missing or damaged files."""
from __future__ import annotations

import errno
import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from featviz_cli.errors import OutputError
from featviz_cli.examples.layout import content_digest
from featviz_cli.examples.pass_ import ExamplesResult, collect
from featviz_cli.examples.write import examples_index, layer_page, update_examples, write_examples
from featviz_cli.outputs.files import json_text

from examples_fixtures import DAMAGES, RED_INFO, RedNet, damage, file_states, red_folder, same_bytes, touched


class _Page(HTMLParser):
    """The links around images (``(href, src)``), the title and all text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.linked_images: list[tuple[str | None, str | None]] = []
        self.anchors: list[str | None] = []
        self.text: list[str] = []
        self._href: str | None = None
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self._in.append(tag)
        if tag == "a":
            self._href = a.get("href")
            self.anchors.append(a.get("href"))
        elif tag == "img":
            self.linked_images.append((self._href, a.get("src")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if not self._in or self._in[-1] not in ("style", "script"):
            self.text.append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def test_red_detector_crops_land_on_the_red_and_the_pages_link_them(tmp_path: Path) -> None:
    squares = red_folder(tmp_path / "images")
    result = collect(RedNet(), RED_INFO, ["blur"], tmp_path / "images", k=4, bottom=True, batch_size=5, workers=0)
    by_redness = sorted(squares, key=lambda n: -squares[n][0])
    files = write_examples(result, tmp_path / "out")
    doc = json.loads(files["blur"].read_text())
    layer_dir = files["blur"].parent
    assert layer_dir == tmp_path / "out" / "examples" / "blur"
    assert {"layer", "model", "k", "images_seen", "unreadable", "units"} <= set(doc)
    assert doc["layer"] == "blur" and doc["model"] == "rednet" and doc["k"] == 4 and doc["images_seen"] == 12
    entries = doc["units"]["0"]["top"]
    assert [e["source"] for e in entries] == by_redness[:4] and [e["rank"] for e in entries] == [0, 1, 2, 3]
    assert set(doc["units"]["0"]) == {"top", "bottom"}
    stats = doc["stats"]["units"]["0"]  # the unit's maximum over space of every image, as a histogram
    assert stats["count"] == 12 and stats["max"] == entries[0]["activation"] and sum(stats["hist"]["counts"]) == 12
    assert doc["stats"]["value"] == "maximum over space" and doc["stats"]["bins"] == 32
    assert set(doc["stats"]["units"]) == set(doc["units"])
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
    page = _parse((layer_dir / "index.html").read_text())
    shown = [(e["full"], e["crop"]) for unit in doc["units"].values() for kind in unit.values() for e in kind]
    assert page.linked_images == shown  # every crop, in order, inside a link to its whole image
    assert all((layer_dir / full).is_file() and (layer_dir / crop).is_file() for full, crop in shown)
    assert "blur" in (tmp_path / "out" / "examples" / "index.html").read_text()


class Tokens(nn.Module):
    """(B, C, H, W) -> (B, H*W, C): a layer of tokens, as vision transformers have."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


def test_token_layers_rank_by_token_and_show_the_whole_image(tmp_path: Path) -> None:
    squares = red_folder(tmp_path / "images")
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


def _doc(**extra: object) -> dict:
    ex = {"rank": 0, "source": "a/<b>.jpg", "activation": 1.23456, "x": 3, "y": 4, "full": "unit_00000/top_00_full.jpg",
          "crop": "unit_00000/top_00_crop.png"}
    return {"model": "m<&>", "layer": "l'1", "k": 1, "images_seen": 9, "unreadable": 2, "input_size": 32,
            "receptive_field": None, "units": {"0": {"top": [ex]}, "5": {"top": [{**ex, "activation": -0.5}],
                                                                        "bottom": [{**ex, "activation": -2.0}]}},
            **extra}


def test_layer_page_shows_the_numbers_and_escapes_the_names() -> None:
    html = layer_page(_doc())
    page = _parse(html)
    text = " ".join("".join(page.text).split())
    assert "<title>m&lt;&amp;&gt; l&#39;1: dataset examples</title>" in html and "<b>" not in html
    assert "m<&> \u00b7 l'1: dataset examples" in text
    assert ("top 1 of 9 images per unit (maximum over space); 2 unreadable file(s) skipped; "
            "no spatial map: whole image. Click a crop for the whole image.") in text
    assert "unit 0" in text and "unit 5" in text and "1.23" in text and "-0.5" in text and "-2" in text
    assert page.anchors[:2] == ["#u0", "#u5"] and 'id="u5"' in html
    assert 'title="a/&lt;b&gt;.jpg at (3, 4): 1.235"' in html  # the source, position and activation to 4 digits
    rf = {"size": 23.4, "full": 41.0, "mass": 0.9}
    text = " ".join("".join(_parse(layer_page(_doc(receptive_field=rf))).text).split())
    assert "crop 23 px of the 32 px input (90% of the input gradient; theoretical receptive field 41 px)." in text


def test_examples_index_links_every_readable_layer(tmp_path: Path) -> None:
    for name, units in (("a", {"0": {}, "1": {}}), ("b", {"3": {}})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "examples.json").write_text(json.dumps({"layer": f"{name}<x>", "images_seen": 7,
                                                                    "units": units}))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "examples.json").write_text("{not json")
    page = _parse(examples_index(tmp_path))
    assert page.anchors == ["a/index.html", "b/index.html"]
    text = " ".join("".join(page.text).split())
    assert "a<x> \u00b7 2 units, 7 images" in text and "b<x> \u00b7 1 units, 7 images" in text
    assert "Dataset examples" in text


# ---------------------------------------------------------------- rewriting only what is missing or damaged


@pytest.fixture(scope="module")
def two_layers(tmp_path_factory: pytest.TempPathFactory) -> tuple[ExamplesResult, Path]:
    """A pass over two layers of the red detector, and its examples written once into ``ref`` (the reference)."""
    root = tmp_path_factory.mktemp("repair")
    red_folder(root / "images")
    result = collect(RedNet(), RED_INFO, ["red", "blur"], root / "images", k=2, bottom=True, batch_size=5,
                     workers=0)
    report = update_examples(result, root / "ref")
    assert report.kept == 0 and len(report.written) == 2 * 2 * 2 * 2 * 2 + 2 * 2 + 1  # images, pages+json, index
    assert set(report.written.values()) == {"is missing"}
    return result, root / "ref"


KINDS = {
    "crop": "examples/blur/unit_00001/bottom_01_crop.png",
    "whole image": "examples/red/unit_00000/top_00_full.jpg",
    "examples.json": "examples/blur/examples.json",
    "layer page": "examples/red/index.html",
    "index page": "examples/index.html",
}


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_rewrite_redoes_exactly_the_damaged_file(two_layers: tuple[ExamplesResult, Path], tmp_path: Path,
                                                   kind: str, how: str) -> None:
    result, ref = two_layers
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    damage(out / KINDS[kind], how)
    before = file_states(out)
    report = update_examples(result, out)
    assert same_bytes(out, ref)  # the repaired directory is the uninterrupted one
    assert touched(before, file_states(out)) == {KINDS[kind]}  # and nothing else was written
    assert list(report.written) == [KINDS[kind]]
    assert report.vouched == (kind != "examples.json")  # a damaged record vouches for nothing
    if kind in ("crop", "whole image"):
        expected = {"corrupt": "does not match its recorded sha256", "delete": "is missing"}.get(how, "bytes, ")
        assert expected in report.written[KINDS[kind]] and report.kept == 2 * 2 * 2 * 2 * 2 - 1
    again = update_examples(result, out)  # and then all is intact
    assert again.written == {} and again.kept == 32


def test_an_examples_json_that_still_parses_but_changed_is_found(two_layers: tuple[ExamplesResult, Path],
                                                                 tmp_path: Path) -> None:
    """A changed digit keeps valid JSON: its content_sha256 tells; the images it lists are not trusted but
    drawn again and compared, so none is written."""
    result, ref = two_layers
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    path = out / "examples/blur/examples.json"
    text = path.read_text()
    assert '"width": 96' in text
    path.write_text(text.replace('"width": 96', '"width": 97', 1))
    assert json.loads(path.read_text())["units"]  # still JSON
    before = file_states(out)
    report = update_examples(result, out)
    assert report.written == {"examples/blur/examples.json": "does not match its recorded content_sha256"}
    assert touched(before, file_states(out)) == {"examples/blur/examples.json"} and same_bytes(out, ref)
    assert report.kept == 16  # the other layer's images, checked by their sha256


def test_a_damaged_record_of_the_files_is_found(two_layers: tuple[ExamplesResult, Path], tmp_path: Path) -> None:
    result, ref = two_layers
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    path = out / "examples/red/examples.json"
    doc = json.loads(path.read_text())
    rec = doc["outputs"]["unit_00000/top_00_crop.png"]
    rec["sha256"] = rec["sha256"][::-1]  # a consistent record that lies about one file
    doc["content_sha256"] = content_digest(doc)
    path.write_text(json_text(doc))
    before = file_states(out)
    report = update_examples(result, out)
    # the crop is drawn again: its bytes are the file's, so only the record is rewritten
    assert report.written == {"examples/red/examples.json": "had other bytes"}
    assert touched(before, file_states(out)) == {"examples/red/examples.json"} and same_bytes(out, ref)


def test_an_examples_json_of_an_earlier_featviz_gets_its_record(two_layers: tuple[ExamplesResult, Path],
                                                               tmp_path: Path) -> None:
    result, ref = two_layers
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    for layer in ("red", "blur"):
        path = out / "examples" / layer / "examples.json"
        doc = json.loads(path.read_text())
        path.write_text(json_text({k: v for k, v in doc.items() if k not in ("outputs", "content_sha256")}))
    before = file_states(out)
    report = update_examples(result, out)
    assert set(report.written) == {"examples/red/examples.json", "examples/blur/examples.json"}
    assert "earlier featviz" in report.written["examples/red/examples.json"]
    assert touched(before, file_states(out)) == set(report.written) and same_bytes(out, ref)


def test_an_examples_json_damaged_anywhere_is_rewritten_alone(two_layers: tuple[ExamplesResult, Path],
                                                             tmp_path: Path) -> None:
    result, ref = two_layers
    size = (ref / "examples/red/examples.json").stat().st_size
    for i, pos in enumerate(range(7, size, size // 12)):  # a dozen single bytes across the file
        out = tmp_path / f"out{i}"
        shutil.copytree(ref, out)
        path = out / "examples/red/examples.json"
        data = bytearray(path.read_bytes())
        data[pos] ^= 0x04
        path.write_bytes(bytes(data))
        before = file_states(out)
        report = update_examples(result, out)
        assert list(report.written) == ["examples/red/examples.json"], pos
        assert touched(before, file_states(out)) == {"examples/red/examples.json"} and same_bytes(out, ref), pos


def _disk_full_at(monkeypatch: pytest.MonkeyPatch, n: int) -> list[str]:
    """Make the ``n``-th rename of a finished temp file onto its target fail as a full disk does."""
    original, calls = os.replace, []

    def replace(src: Any, dst: Any) -> None:
        calls.append(str(dst))
        if len(calls) == n:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    return calls


def test_new_images_redraw_the_examples_that_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An incremental rerun: some example files now show other images, so their old records vouch for nothing;
    the old examples.json goes first, and a write that fails halfway is completed by the rerun."""
    red_folder(tmp_path / "all")
    names = sorted(p.relative_to(tmp_path / "all").as_posix() for p in (tmp_path / "all").rglob("*.png"))
    root = tmp_path / "images"
    for name in names[:6]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "all" / name, root / name)
    first = collect(RedNet(), RED_INFO, ["blur"], root, k=2, bottom=True, batch_size=4, workers=0)
    update_examples(first, tmp_path / "out")
    for name in names[6:]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "all" / name, root / name)
    full = collect(RedNet(), RED_INFO, ["blur"], root, k=2, bottom=True, batch_size=4, workers=0)
    update_examples(full, tmp_path / "ref")
    calls = _disk_full_at(monkeypatch, 3)
    with pytest.raises(OutputError, match="No space left on device"):
        update_examples(full, tmp_path / "out")
    monkeypatch.undo()
    assert len(calls) == 3 and all(c.endswith((".jpg", ".png")) for c in calls)
    assert not (tmp_path / "out/examples/blur/examples.json").exists()  # it described the old examples
    assert not list((tmp_path / "out").rglob("*.tmp"))
    report = update_examples(full, tmp_path / "out")
    assert not report.vouched and "had other bytes" in report.written.values()
    assert same_bytes(tmp_path / "out", tmp_path / "ref")


def test_a_write_that_fails_halfway_leaves_complete_files_and_the_rerun_completes(
        two_layers: tuple[ExamplesResult, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, ref = two_layers
    _disk_full_at(monkeypatch, 7)
    with pytest.raises(OutputError, match="No space left on device"):
        update_examples(result, tmp_path / "out")
    monkeypatch.undo()
    assert not list((tmp_path / "out").rglob("examples.json"))  # written last
    assert not list((tmp_path / "out").rglob("*.tmp")) and len(file_states(tmp_path / "out")) == 6
    before = file_states(tmp_path / "out")
    report = update_examples(result, tmp_path / "out")
    assert same_bytes(tmp_path / "out", ref) and not touched(before, file_states(tmp_path / "out")) & set(before)
    assert len(report.written) == 32 + 5 - 6
