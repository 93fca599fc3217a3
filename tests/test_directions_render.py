"""featviz_cli/directions/render.py: the dictionary sweep's spec, factor-map pictures and tiling."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from featviz_cli.config import parse_spec
from featviz_cli.directions.render import dictionary_spec, heat_overlay, tile


def test_a_map_shows_the_photo_where_high_and_dark_grey_where_low() -> None:
    photo = np.zeros((8, 8, 3), np.uint8)
    photo[..., 0] = 200  # red
    heat = np.zeros((8, 8))
    heat[:, 4:] = 1.0
    out = heat_overlay(photo, heat, 8).astype(int)
    assert (out[:, 6:] == [200, 0, 0]).all()  # high: the photo's own colour
    assert (out[:, :2] == round(200 / 3 * 0.3)).all()  # low: its grey, dimmed


def test_tiles_are_row_major_with_gaps() -> None:
    cells = np.stack([np.full((2, 2, 3), k, np.uint8) for k in range(5)])
    out = tile(cells, 2, 3, gap=1)
    assert out.shape == (5, 8, 3)
    assert out[0, 0, 0] == 0 and out[0, 3, 0] == 1 and out[3, 0, 0] == 3 and out[3, 3, 0] == 4
    assert out[2, 0, 0] == 255 and out[3, 6, 0] == 255  # the gap and the missing sixth cell


def test_the_dictionary_spec_renders_every_row_at_the_layer(tmp_path: Path) -> None:
    spec = parse_spec({"model": {"name": "test_tiny"}, "objective": {"type": "channel", "layer": "act3", "unit": 0},
                       "param": {"batch": 3}})
    here = dictionary_spec(spec, "act2", tmp_path / "m.npy", tmp_path / "r", cossim_pow=2)
    (term,) = here.objective
    assert (term.type, term.layer, term.vector_file, term.units, term.cossim_pow) == \
        ("direction", "act2", str(tmp_path / "m.npy"), "all", 2)
    assert here.param.batch is None and here.output.dir == str(tmp_path / "r")
    assert spec.objective[0].type == "channel"  # the caller's spec is left alone


def test_the_renders_follow_the_pass_resuming_or_archiving(tmp_path: Path) -> None:
    import json

    from featviz_cli.directions.render import render_dictionary
    from featviz_cli.directions.matrix import save_dictionary

    spec = parse_spec({"model": {"name": "test_tiny"}, "objective": {"type": "channel", "layer": "act3", "unit": 0},
                       "param": {"size": 16}, "steps": 2, "device": "cpu", "transforms": "none"})
    matrix = save_dictionary(tmp_path / "m.npy", np.eye(32, dtype=np.float32)[:3])
    out = tmp_path / "renders"
    first = render_dictionary(spec, "act3", matrix, out)
    assert first.done == 3 and len(first.rendered) == 3
    again = render_dictionary(spec, "act3", matrix, out)  # the same settings: resumed, nothing rendered
    assert again.done == 3 and again.rendered == []
    old_hash = json.loads((out / "sweep.json").read_text())["spec_hash"]
    spec.steps = 3  # other settings: the earlier renders are archived, the new ones rendered
    third = render_dictionary(spec, "act3", matrix, out)
    assert third.done == 3 and len(third.rendered) == 3
    assert (out / "archive" / old_hash[:12] / "sweep.json").is_file()
