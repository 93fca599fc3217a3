"""Reading photos (featviz_cli/images.py): one image as a square tensor, and the folder walk shared by
dataset examples and the natural-image spectrum."""
from __future__ import annotations

from pathlib import Path

import pytest

from featviz_cli.errors import SpecError
from featviz_cli.images import iter_images, list_images, load_image

DATA = Path(__file__).parent / "data"


def test_iter_images_is_recursive_sorted_and_case_insensitive(tmp_path: Path) -> None:
    for name in ["b.JPG", "a.png", "sub/c.webp", "sub/deeper/d.JpEg", ".hidden.jpg", "notes.txt", ".cache/e.jpg",
                 "sub/f.gif"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert list(iter_images(tmp_path)) == ["a.png", "b.JPG", "sub/c.webp", "sub/deeper/d.JpEg"]


def test_load_image_resizes_and_centre_crops() -> None:
    img = load_image(DATA / "coffee.jpg", 40)  # 384x256 -> 60x40 -> centre 40x40
    assert img.shape == (3, 40, 40) and 0 <= img.min() and img.max() <= 1
    assert list_images(DATA) == sorted(DATA / f for f in ("astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"))


def test_unreadable_photo_names_the_field(tmp_path) -> None:
    bad = tmp_path / "x.png"
    bad.write_bytes(b"nope")
    with pytest.raises(SpecError, match=r"param.init_image: .*cannot read an image"):
        load_image(bad, 16)
    with pytest.raises(SpecError, match=r"param.init_image: .*no such file"):
        load_image(tmp_path / "missing.png", 16)
