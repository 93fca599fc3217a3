"""The folder walk shared by dataset examples and the natural-image spectrum (featviz_cli/images.py)."""
from __future__ import annotations

from pathlib import Path

from featviz_cli.images import iter_images


def test_iter_images_is_recursive_sorted_and_case_insensitive(tmp_path: Path) -> None:
    for name in ["b.JPG", "a.png", "sub/c.webp", "sub/deeper/d.JpEg", ".hidden.jpg", "notes.txt", ".cache/e.jpg",
                 "sub/f.gif"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert list(iter_images(tmp_path)) == ["a.png", "b.JPG", "sub/c.webp", "sub/deeper/d.JpEg"]
