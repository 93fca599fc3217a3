"""featviz_cli/sweep/gallery.py, beside test_gallery.py: links computed from the paths' parts alone are
``posixpath.relpath``'s, and a rebuild writes no page that did not change."""
from __future__ import annotations

import posixpath
from pathlib import Path

import pytest

from featviz_cli import sweep as sw
from featviz_cli.config import parse_spec
from featviz_cli.sweep.gallery import relative

from sweeps import spec_dict


@pytest.mark.parametrize(("target", "start"), [
    ("index.html", ""), ("index.html", "gallery/act2"), ("gallery/act2/unit_00001.html", "gallery/act2"),
    ("gallery/act3/page_000.html", "gallery/act2"), ("units/act2/00003.png", "gallery/act2"),
    ("examples/act2/crops/3_top_0.png", "gallery/act2"), ("manifest.json", ""), ("gallery/act2", "gallery/act2"),
    ("gallery", "gallery/act2"), ("a/b/c", "a/b/c/d/e"), ("x/../y", "gallery/act2"), ("./z", "q"),
])
def test_relative_is_relpath(target: str, start: str) -> None:
    assert relative(target, start) == posixpath.relpath(target, start or ".")


def test_a_rebuild_with_nothing_changed_writes_no_page(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sw.run_sweep(parse_spec(spec_dict()), out)
    pages = sorted(out.rglob("*.html"))
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in pages}
    sw.rebuild(out)
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(out.rglob("*.html"))} == before
