"""featviz_cli/directions/grid.py: the activation grid of a photo, one cell per position, tiled."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from featviz_cli.config import parse_spec
from featviz_cli.directions.grid import grid_vectors, run_grid
from featviz_cli.errors import SpecError

from conftest import DATA

SPEC = {"model": {"name": "test_tiny"}, "objective": {"type": "channel", "layer": "act3", "unit": 0},
        "param": {"size": 8}, "steps": 4, "device": "cpu", "transforms": "none"}


def test_grid_vectors_are_row_major_positions() -> None:
    acts = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    v = grid_vectors(acts)
    assert v.shape == (12, 2) and torch.equal(v[1 * 4 + 2], acts[:, 1, 2])


def test_the_grid_has_a_cell_per_position_and_is_kept_when_done(tmp_path: Path) -> None:
    page = run_grid(parse_spec(SPEC), DATA / "chelsea.jpg", tmp_path / "g", layer="act3")
    doc = json.loads((tmp_path / "g" / "grid.json").read_text())
    assert (doc["rows"], doc["cols"], doc["cell_size"]) == (8, 8, 8) and len(doc["objective"]) == 64
    with Image.open(tmp_path / "g" / "grid.png") as im:
        assert im.size == (64, 64)
    assert 'src="grid.png"' in page.read_text()
    mtime = (tmp_path / "g" / "grid.png").stat().st_mtime_ns
    run_grid(parse_spec(SPEC), DATA / "chelsea.jpg", tmp_path / "g", layer="act3")
    assert (tmp_path / "g" / "grid.png").stat().st_mtime_ns == mtime
    with pytest.raises(SpecError, match=r"^--layer: layer 'fc' has no spatial map"):
        run_grid(parse_spec(SPEC), DATA / "chelsea.jpg", tmp_path / "h", layer="fc")


def test_the_page_outlines_the_position_under_the_pointer_on_both_images(tmp_path: Path) -> None:
    from directions_helpers import browser_or_skip, mouse, rect

    page = run_grid(parse_spec(SPEC), DATA / "chelsea.jpg", tmp_path / "g", layer="act3")
    with browser_or_skip() as b:
        b.open(page.as_uri())
        assert b.eval("Array.from(document.images).map(i => i.naturalWidth)") == [32, 64]  # photo at the input
        grid = rect(b, "grid-img")
        assert grid["width"] == 64 and rect(b, "photo-img")["width"] == 64  # both at the grid's own size
        mouse(b, "mouseMoved", grid["x"] + 2.5 * 8, grid["y"] + 5.5 * 8)  # row 5, column 2
        assert b.eval("document.getElementById('where').textContent") == "position row 5, column 2 (cell 42 of 64)"
        marks = b.eval("Array.from(document.querySelectorAll('.mark')).map(m => [m.hidden, m.style.left, "
                       "m.style.top])")
        assert marks == [[False, "25%", "62.5%"]] * 2
        mouse(b, "mouseMoved", 1, 1)  # off the images
        assert b.eval("Array.from(document.querySelectorAll('.mark')).every(m => m.hidden)")
