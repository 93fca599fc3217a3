"""featviz_cli/sweep/techniques.py: several techniques per unit in one sweep (``sweep.techniques``).

Each technique's images are what ``featviz render`` gives for a spec written by hand (the channel,
neuron, and K-per-unit diversity objectives), each technique's units have their own files and
sha256, and resume, repair and shards behave as in a plain sweep.
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import featviz_cli
from featviz_cli import sweep as sw
from featviz_cli.config import parse_spec
from featviz_cli.errors import SpecError
from featviz_cli.outputs import png_bytes, sha256_file, to_uint8

from sweeps import spec_dict, unit_view

TECHNIQUES = ["channel", "neuron", {"diverse": 3, "weight": 4.0}]
# act2 units 0..4 and act3 units 0..4; batches of 4 images: 4 units (channel, neuron) or 1 unit (diverse x3).
DATA = spec_dict(objective={"type": "channel", "layer": ["act2", "act3"], "units": "0:5"}, steps=3,
                 sweep={"batch": 4, "page_size": 4, "techniques": TECHNIQUES})


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("techniques") / "out"
    report = sw.run_sweep(parse_spec(copy.deepcopy(DATA)), out)
    assert report.done == report.total == 30
    return out


def _render(objective: list[dict[str, Any]]) -> Any:
    plain = spec_dict(objective=objective, steps=3)
    plain.pop("sweep")
    return to_uint8(featviz_cli.render(plain).images.permute(0, 2, 3, 1))


# ---------------------------------------------------------------- the spec


@pytest.mark.parametrize(("objective", "techniques", "field", "text"), [
    ({"type": "logit", "units": "0:3"}, ["neuron"], "sweep.techniques[0]", "is a logit term"),
    ({"type": "logit", "units": "0:3"}, [{"diverse": 2}], "sweep.techniques[0].layer", "give one"),
    ({"type": "channel", "layer": "act2", "units": "all"}, ["channel", "channel"], "sweep.techniques[1]",
     "listed twice"),
])
def test_techniques_the_term_cannot_have_name_the_field(objective: dict, techniques: list, field: str,
                                                       text: str) -> None:
    spec = parse_spec(spec_dict(objective=objective, sweep={"techniques": techniques}))
    with pytest.raises(SpecError) as err:
        sw.sweep_term(spec)
    assert err.value.field == field and text in str(err.value)


def test_a_logit_sweep_takes_diverse_renders_at_a_named_layer(tiny_model) -> None:
    data = spec_dict(objective={"type": "logit", "units": "0:4"},
                     sweep={"batch": 4, "techniques": [{"diverse": 2, "layer": "act3"}]})
    plan = sw.make_plan(parse_spec(data), *tiny_model)
    assert [(b.technique, b.units) for b in plan.batches] == [("diverse2", (0, 1)), ("diverse2", (2, 3))]
    bad = spec_dict(objective={"type": "logit", "units": "0:4"}, sweep={"techniques": [{"diverse": 2, "layer": "nope"}]})
    with pytest.raises(Exception, match=r"sweep\.techniques\[0\]\.layer: no layer 'nope'"):
        sw.make_plan(parse_spec(bad), *tiny_model)


def test_a_dictionary_sweep_takes_diverse_renders_of_each_row(tmp_path: Path) -> None:
    import numpy as np

    rows = np.random.default_rng(0).standard_normal((3, 32)).astype(np.float32)
    np.save(tmp_path / "dict.npy", rows)
    term = {"type": "direction", "layer": "act3", "vector_file": str(tmp_path / "dict.npy")}
    data = spec_dict(objective={**term, "units": "all"}, steps=3,
                     sweep={"batch": 4, "techniques": [{"diverse": 2, "weight": 4.0}]})
    report = sw.run_sweep(parse_spec(data), tmp_path / "out")
    assert report.done == report.total == 3
    # batches of 4 images: rows 0 and 1 together, two images each
    want = _render([{**term, "units": [0, 0, 1, 1]}, {"type": "diversity", "layer": "act3", "weight": 4.0, "group": 2}])
    names = ("00000.png", "00000_1.png", "00001.png", "00001_1.png")
    got = [(tmp_path / "out/units/diverse2/act3" / n).read_bytes() for n in names]
    assert got == [png_bytes(im) for im in want] and len(set(got)) == 4


def test_each_technique_has_its_batches_and_the_hash_covers_them(tiny_model) -> None:
    plan = sw.make_plan(parse_spec(copy.deepcopy(DATA)), *tiny_model)
    assert [t.dir for t in plan.techniques] == ["channel", "neuron", "diverse3"]
    per_layer = [("channel", (0, 1, 2, 3)), ("channel", (4,)), ("neuron", (0, 1, 2, 3)), ("neuron", (4,))] + [
        ("diverse3", (u,)) for u in range(5)]
    assert [(b.technique, b.units) for b in plan.batches] == per_layer * 2
    assert [b.layer for b in plan.batches] == ["act2"] * 9 + ["act3"] * 9
    assert plan.total == 30 and plan.files(plan.batches[4]).dir == "diverse3/act2"
    plain = sw.make_plan(parse_spec(spec_dict(objective=DATA["objective"], steps=3, sweep={"batch": 4})), *tiny_model)
    assert plain.techniques == () and plain.total == 10 and all(b.technique is None for b in plain.batches)
    fewer = copy.deepcopy(DATA)
    fewer["sweep"]["techniques"] = ["channel", "neuron"]
    hashes = {sw.make_plan(parse_spec(d), *tiny_model).spec_hash for d in (DATA, fewer)}
    assert len(hashes | {plain.spec_hash}) == 3


# ---------------------------------------------------------------- what each technique renders


def test_each_technique_renders_what_render_gives_for_its_objective(swept: Path) -> None:
    units = [0, 1, 2, 3]
    channel = _render([{"type": "channel", "layer": "act2", "units": units}])
    neuron = _render([{"type": "neuron", "layer": "act2", "units": units}])
    for i, u in enumerate(units):
        assert (swept / f"units/channel/act2/{u:05d}.png").read_bytes() == png_bytes(channel[i])
        assert (swept / f"units/neuron/act2/{u:05d}.png").read_bytes() == png_bytes(neuron[i])
    diverse = _render([{"type": "channel", "layer": "act3", "units": [2, 2, 2]},
                       {"type": "diversity", "layer": "act3", "weight": 4.0, "group": 3}])
    names = ["00002.png", "00002_1.png", "00002_2.png"]
    assert [(swept / "units/diverse3/act3" / n).read_bytes() for n in names] == [png_bytes(im) for im in diverse]
    meta = json.loads((swept / "units/diverse3/act3/00002.json").read_text())
    assert meta["images"] == [f"units/diverse3/act3/{n}" for n in names] and meta["technique"] == "diverse3"
    assert len(meta["objectives"]) == 3 and meta["objective"] == pytest.approx(sum(meta["objectives"]) / 3)
    assert set(meta["files"]) == {f"units/diverse3/act3/{n}" for n in names} | {
        f"units/diverse3/act3/00002{k}_step00002.png" for k in ("", "_1", "_2")}
    assert json.loads((swept / "units/neuron/act2/00001.json").read_text())["type"] == "neuron"


def test_the_diverse_images_of_a_unit_differ(swept: Path) -> None:
    images = [(swept / "units/diverse3/act2" / n).read_bytes() for n in ("00001.png", "00001_1.png", "00001_2.png")]
    assert len(set(images)) == 3


def test_manifest_sheets_and_gallery_per_technique(swept: Path) -> None:
    manifest = json.loads((swept / "manifest.json").read_text())
    assert [t["dir"] for t in manifest["techniques"]] == ["channel", "neuron", "diverse3"]
    assert [(lay["layer"], lay["technique"]) for lay in manifest["layers"]] == [
        (layer, t) for layer in ("act2", "act3") for t in ("channel", "neuron", "diverse3")]
    diverse = next(e for e in manifest["units"] if e["technique"] == "diverse3" and e["unit"] == 2)
    assert len(diverse["images"]) == 3 and all(sha256_file(swept / rel) == sha for rel, sha in
                                               zip(diverse["images"], diverse["sha256s"]))
    assert len(diverse["snapshots"]) == 3
    for t in ("channel", "neuron", "diverse3"):
        assert (swept / f"sheets/{t}/act2/sheet_001.png").is_file()
    from PIL import Image

    with Image.open(swept / "sheets/diverse3/act2/sheet_000.png") as wide, \
            Image.open(swept / "sheets/channel/act2/sheet_000.png") as one:
        assert wide.size[0] > 2 * one.size[0]  # each unit's three images side by side
    page = (swept / "gallery/act2/unit_00002.html").read_text()
    for rel in ("units/channel/act2/00002.png", "units/neuron/act2/00002.png", "units/diverse3/act2/00002_2.png"):
        assert f'src="../../{rel}"' in page
    assert 'href="#diverse3"' in page and 'rel="next-layer" href="../act3/unit_00002.html"' in page
    layer_page = (swept / "gallery/act2/neuron/page_001.html").read_text()
    assert 'href="../unit_00004.html"' in layer_page and '<b>neuron</b>' in layer_page
    assert 'href="../page_001.html">channel<' in layer_page


# ---------------------------------------------------------------- resume, repair, shards


def test_a_damaged_diverse_image_is_rendered_again_exactly(swept: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(swept, out)
    damaged = out / "units/diverse3/act2/00003_2.png"
    damaged.write_bytes(damaged.read_bytes()[:-7])
    (out / "units/neuron/act3/00000.json").unlink()
    kept = out / "units/channel/act2/00000.png"
    before = kept.stat().st_mtime_ns
    report = sw.run_sweep(parse_spec(copy.deepcopy(DATA)), out)
    assert sorted(report.rendered) == [("act2", 3), ("act3", 0)]
    assert len(report.damaged) == 1 and report.damaged[0].startswith("units/diverse3/act2/00003_2.png has ")
    assert kept.stat().st_mtime_ns == before
    for rel in ("units/diverse3/act2/00003_2.png", "units/neuron/act3/00000.png"):
        assert (out / rel).read_bytes() == (swept / rel).read_bytes()
    assert unit_view(out / "units/neuron/act3/00000.json") == unit_view(swept / "units/neuron/act3/00000.json")


def test_two_shards_make_the_same_files_as_one_process(swept: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = parse_spec(copy.deepcopy(DATA))
    first = sw.run_sweep(spec, out, shard=(0, 2))
    assert 0 < first.done < 30
    sw.run_sweep(spec, out, shard=(1, 2))
    pngs = sorted(p.relative_to(swept).as_posix() for p in (swept / "units").rglob("*.png"))
    assert sorted(p.relative_to(out).as_posix() for p in (out / "units").rglob("*.png")) == pngs
    assert all((out / rel).read_bytes() == (swept / rel).read_bytes() for rel in pngs)
    assert json.loads((out / "manifest.json").read_text())["done"] == 30


def test_transparency_maps_are_unit_files_and_shown_beside_each_technique(tmp_path: Path) -> None:
    data = spec_dict(objective={"type": "channel", "layer": "act2", "units": "0:2"}, steps=2,
                     sweep={"batch": 4, "techniques": ["channel", {"diverse": 2}]}, output={"alpha": True})
    out = tmp_path / "out"
    assert sw.run_sweep(parse_spec(data), out).done == 4
    unit = json.loads((out / "units/diverse2/act2/00001.json").read_text())
    assert sorted(f for f in unit["files"] if "_step" not in f) == ["units/diverse2/act2/00001.png", "units/diverse2/act2/00001_1.png",
                                     "units/diverse2/act2/00001_1_alpha.png", "units/diverse2/act2/00001_alpha.png"]
    plain = copy.deepcopy(data)
    plain.pop("sweep")
    plain["objective"] = {"type": "channel", "layer": "act2", "units": [0, 1]}
    result = featviz_cli.render(plain)  # the channel technique's map is the render's own transparency map
    from featviz_cli.outputs import heat_map
    from PIL import Image
    import numpy as np

    with Image.open(out / "units/channel/act2/00001_alpha.png") as im:
        assert (np.asarray(im.convert("RGB")) == heat_map(result.alpha[1])).all()
    page = (out / "gallery/act2/unit_00001.html").read_text()
    assert page.count('alt="alpha"') == 3 and "00001_1_alpha.png" in page  # one per image, both techniques
    assert sw.run_sweep(parse_spec(data), out).done_before == 4  # and they count as the unit's files on a rerun
