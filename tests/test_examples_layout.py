"""The examples' file names under OUT, reading and checking examples.json and the files it records
(featviz_cli/examples/layout.py)."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from featviz_cli.examples.layout import (
    content_digest,
    describe_files,
    layer_rel,
    load_record,
    read_examples,
    repair_lines,
    unit_dir,
)
from featviz_cli.examples.pass_ import collect
from featviz_cli.examples.write import examples_index, update_examples
from featviz_cli.sweep.gallery import load_examples, shown_examples

from conftest import ROOT
from examples_fixtures import RED_INFO, RedNet, red_folder


def test_names_under_out() -> None:
    assert layer_rel("features.3/conv:0") == "examples/features.3_conv_0"
    assert layer_rel("_blocks.10") == "examples/_blocks.10"
    assert unit_dir(5) == "unit_00005" and unit_dir(123456) == "unit_123456"


def test_read_examples_wants_a_table_of_units(tmp_path: Path) -> None:
    path = tmp_path / "examples.json"
    assert read_examples(path) == {}  # missing
    for text in ("{not json", "[1, 2]", '{"layer": "a"}', '{"units": []}'):
        path.write_text(text)
        assert read_examples(path) == {}, text
    doc = {"layer": "a", "units": {"0": {"top": []}}}
    path.write_text(json.dumps(doc))
    assert read_examples(path) == doc
    for units in ({"0": "x"}, {"0": [1]}, {"0": {"top": {}}}, {"0": {"top": [3]}}):  # what the pages index
        path.write_text(json.dumps({"layer": "a", "units": units}))
        assert read_examples(path) == {}, units


def test_a_record_is_checked_against_its_content_sha256(tmp_path: Path) -> None:
    path = tmp_path / "examples.json"
    doc = {"layer": "a", "activation": 1.5, "units": {"0": {"top": [{"rank": 0, "x": 1e16, "y": -0.0}]}}}
    text = json.dumps(doc, ensure_ascii=False, indent=2) + "\n"  # json_text, written independently
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert content_digest(doc) == digest == content_digest({**doc, "content_sha256": "anything"})
    path.write_text(json.dumps({**doc, "content_sha256": digest}))
    assert load_record(path) == ({**doc, "content_sha256": digest}, "")
    path.write_text(json.dumps({**doc, "activation": 1.25, "content_sha256": digest}))
    assert load_record(path) == (None, "does not match its recorded content_sha256")
    assert read_examples(path) == {}
    path.write_text(json.dumps(doc))  # an earlier featviz's: no sha256 to check
    assert load_record(path) == (doc, "")
    assert load_record(tmp_path / "none.json") == (None, "is missing")
    path.write_bytes(b'{"units": {}, "x": "\xff"}')
    assert load_record(path) == (None, "is not valid JSON")


def test_files_are_described_by_kind() -> None:
    rels = ["examples/a/unit_00001/top_00_crop.png", "examples/a/unit_00002/top_01_crop.png",
            "examples/b/unit_00001/bottom_00_full.jpg", "examples/a/examples.json", "examples/a/index.html",
            "examples/index.html", "examples/checkpoint-0123.pt", "examples/checkpoint-0123.sha256"]
    assert describe_files(rels) == ("8 file(s): 1 checkpoint, 1 checkpoint digest, 1 whole image(s), 2 crop(s), "
                                    "1 examples.json, 1 layer page(s), 1 index page")
    assert describe_files(["examples/a/unit_00001/top_00_crop.png", "a.txt"]) == "2 file(s): 1 crop(s), 1 other file(s)"


def test_repairs_are_reported_one_line_per_kind() -> None:
    repaired = {f"examples/a/unit_0000{u}/top_00_crop.png": "is missing" for u in range(5)}
    repaired["examples/checkpoint-0123.pt"] = "does not match its recorded sha256 (checkpoint-0123.sha256)"
    repaired["examples/a/examples.json"] = "is not valid JSON"
    assert repair_lines(repaired) == [
        "Repaired 1 checkpoint: examples/checkpoint-0123.pt does not match its recorded sha256 "
        "(checkpoint-0123.sha256).",
        "Repaired 5 crop(s): examples/a/unit_00000/top_00_crop.png is missing; examples/a/unit_00001/top_00_crop.png "
        "is missing; examples/a/unit_00002/top_00_crop.png is missing; and 2 more.",
        "Repaired 1 examples.json: examples/a/examples.json is not valid JSON."]
    assert repair_lines(repaired, shown=5)[1].endswith("unit_00004/top_00_crop.png is missing.")
    assert repair_lines({}) == []


def _same_content(doc: dict, intact: dict) -> bool:
    def strip(d: dict) -> dict:
        return {k: v for k, v in d.items() if k in intact and k != "content_sha256"}
    return strip(doc) == strip(intact)


def test_an_examples_json_damaged_at_any_byte_never_crashes_the_readers(tmp_path: Path) -> None:
    """Every single-byte change of a real examples.json is read as {}, or as the intact document where it does
    not change what the JSON says (the 17th digit of a float) or changes only the content_sha256's own name
    (read as an earlier featviz's document): never as other examples. The gallery and the index page read
    each without an exception."""
    red_folder(tmp_path / "images")
    result = collect(RedNet(), RED_INFO, ["blur"], tmp_path / "images", k=1, bottom=True, batch_size=6, workers=0)
    path = update_examples(result, tmp_path / "out").paths["blur"]
    data = path.read_bytes()
    intact = read_examples(path)
    assert intact and shown_examples(tmp_path / "out", "blur", intact, 0)
    accepted = 0
    for pos in range(len(data)):
        damaged = bytearray(data)
        damaged[pos] ^= 0x01 if data[pos] not in b"\n " else 0x20
        path.write_bytes(bytes(damaged))
        doc = load_examples(tmp_path / "out", "blur")
        assert doc == {} or _same_content(doc, intact), pos
        accepted += bool(doc)
        for unit in range(3):
            shown_examples(tmp_path / "out", "blur", doc, unit)
        examples_index(path.parent.parent)
    assert accepted < len(data) // 50  # all but a few changes are caught by the content_sha256


def test_the_layout_and_the_gallery_do_not_load_torch() -> None:
    code = ("import sys, featviz_cli.examples.layout, featviz_cli.sweep.gallery; "
            "print(sorted(m for m in ('torch', 'featviz_cli.examples.pass_') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
