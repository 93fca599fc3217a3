"""The examples' file names under OUT and reading examples.json (featviz_cli/examples/layout.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from featviz_cli.examples.layout import layer_rel, read_examples, unit_dir

from conftest import ROOT


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


def test_the_layout_and_the_gallery_do_not_load_torch() -> None:
    code = ("import sys, featviz_cli.examples.layout, featviz_cli.sweep.gallery; "
            "print(sorted(m for m in ('torch', 'featviz_cli.examples.pass_') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
