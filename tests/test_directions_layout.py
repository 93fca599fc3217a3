"""featviz_cli/directions/layout.py: where the passes put their files; an output directory that a failed
pass leaves as it found it."""
from __future__ import annotations

import json
from pathlib import Path


from featviz_cli.directions.layout import caricature_rel, kept, read_caricatures
from featviz_cli.errors import SpecError


def test_kept_says_what_stays_for_the_rerun(tmp_path: Path) -> None:
    e = kept(SpecError("--n", "12 factors from 10 sampled positions."), "the sample", tmp_path)
    assert e.field == "--n"
    assert str(e) == f"--n: 12 factors from 10 sampled positions. (the sample stays in {tmp_path}; the rerun reuses it.)"


def test_read_caricatures_keeps_only_layers_whose_image_is_inside_out(tmp_path: Path) -> None:
    (tmp_path / "caricatures").mkdir()
    (tmp_path / "caricatures" / "a.png").write_bytes(b"png")
    doc = {"photo": "p.jpg", "layers": [{"layer": "a", "image": caricature_rel("a.png")},
                                        {"layer": "b", "image": caricature_rel("b.png")},
                                        {"layer": "c", "image": "../../etc/passwd"}]}
    (tmp_path / "caricatures" / "caricatures.json").write_text(json.dumps(doc))
    assert [e["layer"] for e in read_caricatures(tmp_path)["layers"]] == ["a"]
    assert read_caricatures(tmp_path / "nowhere") is None
