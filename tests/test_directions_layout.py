"""featviz_cli/directions/layout.py: where the passes put their files; an output directory that a failed
pass leaves as it found it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from featviz_cli.directions.layout import caricature_rel, kept, output_dir, read_caricatures
from featviz_cli.errors import SpecError


def test_a_pass_that_fails_before_writing_removes_the_directories_it_created(tmp_path: Path) -> None:
    with pytest.raises(SpecError):
        with output_dir(tmp_path / "a" / "b" / "out") as out:
            assert out.is_dir() and out == (tmp_path / "a" / "b" / "out").resolve()
            (out / "sub").mkdir()  # directories alone are nothing written
            raise SpecError("--x", "bad")
    assert sorted(tmp_path.iterdir()) == []


def test_a_failed_pass_keeps_what_it_wrote_and_what_was_there(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with output_dir(tmp_path / "new") as out:
            (out / "sample-1.pt").write_bytes(b"checkpoint")
            raise KeyboardInterrupt
    assert (tmp_path / "new" / "sample-1.pt").read_bytes() == b"checkpoint"
    (tmp_path / "old").mkdir()
    with pytest.raises(ValueError):
        with output_dir(tmp_path / "old"):
            raise ValueError
    assert (tmp_path / "old").is_dir()  # it existed before: left alone
    with output_dir(tmp_path / "fine") as out:
        pass
    assert out.is_dir()


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
