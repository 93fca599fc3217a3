"""The static gallery: pages and links, dataset examples (the shared contract), and a real headless browser."""
from __future__ import annotations

import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from PIL import Image
from typer.testing import CliRunner

from featviz_cli.sweep import gallery
from featviz_cli.cli import app
from featviz_cli.config import parse_spec
from featviz_cli.examples import run_examples
from featviz_cli.sweep import run_sweep

from chromium import Browser, find_chromium
from examples_fixtures import damage, red_folder

# 12 units: 0..5 of act2 and act3, batches of 3 (shard 0/2 gets batches 0 and 2: units 0..2 of each layer),
# layer pages of 4 units: two pages per layer.
SPEC = {
    "model": {"name": "test_tiny"},
    "objective": {"type": "channel", "layer": ["act2", "act3"], "units": "0:6"},
    "param": {"size": 16},
    "steps": 2,
    "thresholds": [1],
    "device": "cpu",
    "sweep": {"batch": 3, "page_size": 4},
}


def _image(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path.name


def write_examples(out: Path) -> None:
    """``OUT/examples/act2/examples.json`` and its images as ``featviz examples`` writes them (the contract)."""
    base = out / "examples" / "act2"
    for rel, size in (("unit_00001/top_00_crop.png", (24, 24)), ("unit_00001/top_00_full.jpg", (64, 48)),
                      ("unit_00001/top_01_crop.png", (24, 24)), ("unit_00001/top_01_full.jpg", (64, 48)),
                      ("unit_00001/bottom_00_crop.png", (24, 24)), ("unit_00003/top_00_crop.png", (24, 24))):
        _image(base / rel, size, (30 + len(rel) * 3, 120, 200))

    def ex(rank: int, unit: int, kind: str, act: float, full: bool = True, crop: str | None = None) -> dict:
        d = f"unit_{unit:05d}"
        return {"rank": rank, "source": f"/data/photos/img_{unit}_{rank}.jpg", "activation": act, "x": 3, "y": 4,
                "full": f"{d}/{kind}_{rank:02d}_full.jpg" if full else f"{d}/none.jpg",
                "crop": crop or f"{d}/{kind}_{rank:02d}_crop.png"}

    data = {"layer": "act2", "model": "test_tiny", "k": 2, "images_seen": 7, "unreadable": 1, "units": {
        "1": {"top": [ex(0, 1, "top", 12.5), ex(1, 1, "top", 9.25)], "bottom": [ex(0, 1, "bottom", -1.5, False)]},
        "3": {"top": [ex(0, 3, "top", 4.0, False), ex(1, 3, "top", 3.0, crop="unit_00003/missing.png"),
                      ex(2, 3, "top", 2.0, crop="../../sweep.json")]},
        "99": {"top": [ex(0, 99, "top", 1.0)]},
    }}
    (base / "examples.json").write_text(json.dumps(data))


@pytest.fixture(scope="module")
def galleries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A sweep after shard 0/2 only (``partial``) and after both shards (``full``), each with
    examples for act2 and a gallery rebuilt by ``featviz gallery``."""
    root = tmp_path_factory.mktemp("gallery")
    out = root / "out"
    spec = parse_spec(SPEC)
    run_sweep(spec, out, shard=(0, 2), build_gallery=False)
    write_examples(out)
    result = CliRunner().invoke(app, ["gallery", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out.resolve() / "index.html")
    assert "6 of 12 unit(s) done, 6 pending, 0 corrupt." in result.stderr
    shutil.copytree(out, root / "partial")
    run_sweep(spec, out, shard=(1, 2))
    return {"partial": root / "partial", "full": out}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if (tag, name) in (("a", "href"), ("img", "src"), ("link", "href"), ("script", "src")) and value:
                self.urls.append((tag, value))


def links_of(page: Path) -> list[tuple[str, str]]:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.urls


def check_links(out: Path) -> int:
    """Every link and image of every page points to a file inside ``out``; returns how many were checked."""
    pages = [out / "index.html", *sorted((out / "gallery").rglob("*.html"))]
    n = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for tag, url in links_of(page):
            if url.startswith("#"):  # a section of the same page (a technique on a unit page)
                assert f'id="{url[1:]}"' in text, f"{page.relative_to(out)}: no section {url}"
                n += 1
                continue
            assert "://" not in url and not url.startswith("/"), f"{page}: {url} is not a relative link"
            target = (page.parent / unquote(url)).resolve()
            assert target.is_file(), f"{page.relative_to(out)}: {tag} {url} does not resolve"
            assert out.resolve() in target.parents
            n += 1
    return n


# ---------------------------------------------------------------- files and pages


def test_gallery_pages_and_links(galleries: dict[str, Path]) -> None:
    out = galleries["full"]
    pages = sorted(p.relative_to(out).as_posix() for p in (out / "gallery").rglob("*.html"))
    assert pages == sorted([f"gallery/{layer}/page_00{p}.html" for layer in ("act2", "act3") for p in (0, 1)]
                           + [f"gallery/{layer}/unit_{u:05d}.html" for layer in ("act2", "act3") for u in range(6)])
    assert check_links(out) > 12 * 4
    layer_page = (out / "gallery/act2/page_000.html").read_text()
    assert layer_page.count("<img") == 4 and 'rel="next" href="page_001.html"' in layer_page
    assert 'rel="up" href="../../index.html"' in layer_page
    unit = (out / "gallery/act3/unit_00000.html").read_text()
    assert 'rel="prev" href="../act2/unit_00005.html"' in unit and 'rel="next" href="unit_00001.html"' in unit
    assert 'src="../../units/act3/00000.png"' in unit and 'src="../../units/act3/00000_step00001.png"' in unit
    assert '<script src="../jump.js"></script>' in unit  # the keys and the jump box, one file for every page
    assert "addEventListener(\"keydown\"" in (out / "gallery/jump.js").read_text()


def test_partial_gallery_shows_pending_units_without_broken_images(galleries: dict[str, Path]) -> None:
    out = galleries["partial"]
    check_links(out)
    second = (out / "gallery/act2/page_001.html").read_text()  # units 4 and 5, not rendered by shard 0
    assert "<img" not in second and second.count('class="ph">pending<') == 2
    assert "not rendered yet" in (out / "gallery/act2/unit_00004.html").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["done"], manifest["pending"]) == (6, 6)


def test_unit_page_shows_dataset_examples_and_the_manifest_records_them(galleries: dict[str, Path]) -> None:
    out = galleries["full"]
    manifest = json.loads((out / "manifest.json").read_text())
    by_unit = {(e["layer"], e["unit"]): e for e in manifest["units"]}
    shown = by_unit[("act2", 1)]["examples"]
    assert [(x["kind"], x["rank"], x["activation"]) for x in shown] == [("top", 0, 12.5), ("top", 1, 9.25),
                                                                         ("bottom", 0, -1.5)]
    assert shown[0]["crop"] == "examples/act2/unit_00001/top_00_crop.png"
    assert shown[0]["full"] == "examples/act2/unit_00001/top_00_full.jpg" and shown[2]["full"] is None
    assert shown[0]["source"] == "/data/photos/img_1_0.jpg"
    # a missing crop and a path leaving the examples directory are not shown
    assert [x["rank"] for x in by_unit[("act2", 3)]["examples"]] == [0]
    assert by_unit[("act2", 0)]["examples"] == [] and by_unit[("act3", 1)]["examples"] == []
    page = (out / "gallery/act2/unit_00001.html").read_text()
    assert ('<a href="../../examples/act2/unit_00001/top_00_full.jpg"><img '
            'src="../../examples/act2/unit_00001/top_00_crop.png"') in page
    assert "act 12.5" in page and "act -1.5" in page and "from 7 images" in page and "img_1_0.jpg" in page
    assert "sweep.json" not in (out / "gallery/act2/unit_00003.html").read_text()


def test_page_size_change_rewrites_pages_and_sheets_and_sticks(galleries: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(galleries["full"], out)

    def pages() -> list[str]:
        return sorted(p.name for p in (out / "gallery" / "act2").glob("page_*.html"))

    def sheets() -> list[str]:
        return sorted(p.name for p in (out / "sheets" / "act2").iterdir())

    runner = CliRunner()
    assert runner.invoke(app, ["gallery", str(out), "--page-size", "2"]).exit_code == 0
    assert pages() == ["page_000.html", "page_001.html", "page_002.html"] and len(sheets()) == 3
    assert runner.invoke(app, ["gallery", str(out)]).exit_code == 0  # the last page size is kept
    assert len(pages()) == 3
    assert runner.invoke(app, ["gallery", str(out), "--page-size", "6"]).exit_code == 0
    assert pages() == ["page_000.html"] and sheets() == ["sheet_000.png"]  # stale pages and sheets removed
    check_links(out)


def test_unreadable_examples_file_shows_no_examples(tmp_path: Path) -> None:
    (tmp_path / "examples" / "act2").mkdir(parents=True)
    (tmp_path / "examples" / "act2" / "examples.json").write_text("{not json")
    assert gallery.load_examples(tmp_path, "act2") == {}
    assert gallery.shown_examples(tmp_path, "act2", {}, 1) == []


def test_the_gallery_works_on_damaged_examples_and_shows_them_again_once_repaired(
        galleries: dict[str, Path], tmp_path: Path) -> None:
    """Real examples (``featviz examples``) beside a sweep, damaged: the gallery still builds, links only files
    that exist, shows no examples of a layer whose examples.json is damaged; the rerun of the examples repairs
    them and the rebuilt gallery is the one of the intact examples."""
    out = tmp_path / "out"
    shutil.copytree(galleries["full"], out)
    shutil.rmtree(out / "examples")
    red_folder(tmp_path / "images")
    spec = parse_spec({**SPEC, "output": {"dir": str(out)}, "dataset": {
        "images": str(tmp_path / "images"), "k": 2, "bottom": True, "workers": 0, "batch_size": 6}})
    run_examples(spec)
    runner = CliRunner()

    def rebuilt() -> dict[str, Any]:
        result = runner.invoke(app, ["gallery", str(out)])
        assert result.exit_code == 0, result.output
        check_links(out)
        pages = {p.relative_to(out).as_posix(): p.read_bytes() for p in (out / "gallery").rglob("*.html")}
        manifest = json.loads((out / "manifest.json").read_text())
        return {"pages": pages, "examples": {(e["layer"], e["unit"]): e["examples"] for e in manifest["units"]}}

    intact = rebuilt()
    assert all(len(intact["examples"][(layer, u)]) == 4 for layer in ("act2", "act3") for u in range(6))
    damage(out / "examples/act2/unit_00001/top_00_crop.png", "delete")
    damage(out / "examples/act2/unit_00002/top_00_full.jpg", "delete")
    damage(out / "examples/act2/unit_00003/bottom_01_crop.png", "corrupt")
    damage(out / "examples/act2/index.html", "truncate")
    damage(out / "examples/act3/examples.json", "truncate")
    damage(next((out / "examples").glob("checkpoint-*.pt")), "corrupt")
    damaged = rebuilt()
    assert damaged["examples"][("act2", 1)] == intact["examples"][("act2", 1)][1:]  # its crop is gone
    assert damaged["examples"][("act2", 2)][0]["full"] is None
    assert damaged["examples"][("act2", 3)] == intact["examples"][("act2", 3)]  # still a file: shown
    assert all(damaged["examples"][("act3", u)] == [] for u in range(6))
    repaired = run_examples(spec)[0].repaired
    assert len(repaired) == 6
    assert rebuilt() == intact


def test_names_are_escaped_in_pages(tmp_path: Path) -> None:
    layer = '<script>alert("x")</script>'
    entry = {"layer": layer, "unit": 0, "label": "0 <b>cls</b>", "status": "pending", "meta": "units/x/00000.json",
             "image": None}
    manifest = {"page_size": 4, "done": 0, "total": 1, "layers": [
        {"layer": layer, "dir": "x", "channels": 1, "units": 1, "done": 0, "sheets": [None]}], "units": [entry]}
    record = {"spec_hash": "0" * 64, "spec": {"name": "<i>n</i>"}, "model": {"name": "m"}}
    gallery.write_gallery(tmp_path, record, manifest)
    for page in [tmp_path / "index.html", *(tmp_path / "gallery").rglob("*.html")]:
        text = page.read_text()
        assert "<script>alert" not in text and "<b>cls" not in text and "<i>n" not in text


def test_gallery_of_a_directory_without_a_sweep_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["gallery", str(tmp_path)])
    assert result.exit_code == 2  # bad input, as other wrong arguments
    assert "has no sweep.json: it is not a sweep output directory" in result.output


# ---------------------------------------------------------------- a real browser


@pytest.fixture(scope="module")
def browser() -> Any:
    exe = find_chromium()
    if exe is None:
        reason = "chromium is not installed here; 'make chromium' installs Debian's (apt-get install chromium)"
        if os.environ.get("FEATVIZ_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    with Browser(exe) as b:
        yield b


def _images(b: Browser) -> list[list[Any]]:
    return b.eval("Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")


def _page(b: Browser) -> str:
    return unquote(b.eval("location.pathname")).rsplit("/gallery/", 1)[-1]


def _decoded(b: Browser, expected: int) -> None:
    images = _images(b)
    assert len(images) == expected, images
    assert all(done and width > 0 for _, done, width in images), images


def test_browser_loads_pages_decodes_images_and_navigates(galleries: dict[str, Path], browser: Browser,
                                                          tmp_path: Path) -> None:
    out = galleries["full"]
    b = browser
    b.open((out / "index.html").as_uri())
    assert b.eval("document.title") == "featviz \u00b7 test_tiny sweep"
    _decoded(b, 12)  # 6 preview thumbnails per layer
    b.follow('a[href="gallery/act2/page_000.html"]')
    assert _page(b) == "act2/page_000.html"
    _decoded(b, 4)
    b.screenshot(tmp_path / "layer.png")
    b.press("ArrowRight", 39)  # the next page of the layer
    assert _page(b) == "act2/page_001.html"
    _decoded(b, 2)
    b.press("ArrowLeft", 37)
    assert _page(b) == "act2/page_000.html"
    b.follow('a[href="unit_00001.html"]')
    assert _page(b) == "act2/unit_00001.html"
    _decoded(b, 7)  # the image, one snapshot, three example crops and the whole images of two (one has none)
    assert b.eval("document.querySelector('a[href$=\"top_00_full.jpg\"] img').naturalWidth") == 24
    b.screenshot(tmp_path / "unit.png")
    b.press("ArrowRight", 39)
    assert _page(b) == "act2/unit_00002.html"
    b.press("ArrowUp", 38)  # back to the layer page holding unit 2
    assert _page(b) == "act2/page_000.html"
    b.press("ArrowUp", 38)
    assert b.eval("location.pathname").endswith("/index.html")
    b.follow('a[href="sheets/act3/sheet_001.png"]')  # a contact sheet opens as an image
    assert b.eval("document.images.length === 1 && document.images[0].naturalWidth > 32")
    with Image.open(tmp_path / "layer.png") as im:
        assert im.size == (1280, 900)
    if os.environ.get("FEATVIZ_SCREENSHOTS"):
        for name in ("layer.png", "unit.png"):
            shutil.copy(tmp_path / name, Path(os.environ["FEATVIZ_SCREENSHOTS"]) / name)


def test_browser_partial_gallery_has_no_broken_image(galleries: dict[str, Path], browser: Browser) -> None:
    out = galleries["partial"]
    for page, n in (("gallery/act2/page_000.html", 3), ("gallery/act2/page_001.html", 0),
                    ("gallery/act3/page_000.html", 3), ("index.html", 6)):
        browser.open((out / page).as_uri())
        _decoded(browser, n)


# ---------------------------------------------------------------- the microscope in a browser


@pytest.fixture(scope="module")
def microscope(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An atlas of act2 and act3 (units 0..2) with three techniques, real photos' examples and faithfulness."""
    from featviz_cli.sweep.atlas import run_atlas

    from conftest import DATA

    out = tmp_path_factory.mktemp("microscope") / "out"
    report = run_atlas("test_tiny", out, layers=["act2", "act3"], units="0:3", steps=2, device="cpu", k=2,
                       overrides=["param.size=16", "sweep.techniques=[channel, neuron, {diverse: 2}]",
                                  "sweep.page_size=2"], images=str(DATA))
    assert report.sweep.done == 18 and report.faithfulness.measured == 18
    return out


def _pages(out: Path) -> list[Path]:
    return [out / "index.html", *sorted((out / "gallery").rglob("*.html"))]


def test_browser_microscope_pages_have_no_errors_and_every_image_loads(microscope: Path, browser: Browser) -> None:
    pages = _pages(microscope)
    assert len(pages) == 1 + 2 * 2 * 3 + 6  # the index, 2 pages per layer and technique, 6 unit pages
    for page in pages:
        browser.errors.clear()
        browser.open(page.as_uri())
        images = _images(browser)
        assert images and all(done and width > 0 for _, done, width in images), (page, images)
        assert browser.errors == [], (page, browser.errors)
    check_links(microscope)
    browser.open((microscope / "gallery/act2/unit_00001.html").as_uri())
    sections = browser.eval("Array.from(document.querySelectorAll('.renders section h2')).map(h => h.textContent)")
    assert sections == ["channel", "neuron", "diverse \u00d72"]
    assert browser.eval("document.querySelectorAll('.ex img').length") == 8  # 2 top + 2 bottom: crops and whole images
    assert browser.eval("document.querySelectorAll('svg.hist rect').length") >= 1
    assert browser.eval("document.querySelectorAll('svg.hist line.mark').length") == 3  # each technique's activation
    assert browser.eval("document.querySelectorAll('table.faith').length") == 3


def test_browser_microscope_keys_and_tabs(microscope: Path, browser: Browser) -> None:
    b = browser
    b.open((microscope / "gallery/act2/unit_00001.html").as_uri())
    b.press("ArrowRight", 39)
    assert _page(b) == "act2/unit_00002.html"
    b.press("]", 221)  # the same unit in the next layer
    assert _page(b) == "act3/unit_00002.html"
    b.press("[", 219)
    assert _page(b) == "act2/unit_00002.html"
    b.press("ArrowUp", 38)  # the layer page holding it
    assert _page(b) == "act2/page_001.html"
    b.follow('nav.tabs a[href="neuron/page_001.html"]')  # the same page as another technique renders it
    assert _page(b) == "act2/neuron/page_001.html"
    b.press("ArrowLeft", 37)
    assert _page(b) == "act2/neuron/page_000.html"
    assert b.errors == []


def _jump(b: Browser, query: str, navigates: bool = True) -> str:
    b.events.clear()
    b.eval(f"(f => {{ f.q.value = {json.dumps(query)}; f.requestSubmit(); }})(document.querySelector('form.jump'))")
    if navigates:
        b.wait_event("Page.loadEventFired")
    return b.eval("document.querySelector('form.jump output').textContent")


def test_browser_jump_box(microscope: Path, browser: Browser) -> None:
    b = browser
    b.open((microscope / "index.html").as_uri())
    _jump(b, "act3:2")
    assert _page(b) == "act3/unit_00002.html"
    _jump(b, "0")  # a unit of this page's layer
    assert _page(b) == "act3/unit_00000.html"
    _jump(b, "ACT2")  # a layer (case does not matter when it is unambiguous)
    assert _page(b) == "act2/page_000.html"
    assert _jump(b, "act9:1", navigates=False) == "no layer act9"
    assert _jump(b, "act2:7", navigates=False) == "act2 has no unit 7 in this sweep"
    assert _page(b) == "act2/page_000.html"
    b.events.clear()
    for kind in ("keyDown", "keyUp"):  # "/" puts the cursor in the jump box
        b.call("Input.dispatchKeyEvent", {"type": kind, "key": "/", "code": "Slash", "windowsVirtualKeyCode": 191},
               session=True)
    assert b.eval("document.activeElement === document.querySelector('form.jump input')")
    assert b.errors == []
