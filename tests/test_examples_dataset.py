"""The images of a pass (featviz_cli/examples/dataset.py): counting, the view geometry, decoding, streaming chunks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from featviz_cli.examples.dataset import ImageChunks, count_images, load_for_network, view_of
from featviz_cli.images import iter_images

from examples_fixtures import make_image, red_folder


def test_view_resizes_the_shorter_side_and_takes_the_centre() -> None:
    view = view_of(400, 300, 32)
    assert view.resized == (43, 32)
    x0, y0, x1, y1 = view.seen
    assert (y0, y1) == (0, 300)
    assert x1 - x0 == pytest.approx(300, abs=10)
    assert x0 == pytest.approx(400 - x1, abs=400 / 43 + 1e-6)  # centred to a resized pixel
    assert view_of(50, 80, 10).to_source((0, 0, 10, 10)) == (0.0, 15.0, 50.0, 65.0)


def test_load_for_network_takes_the_centre_crop_upright(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    Image.fromarray(arr).save(tmp_path / "lr.png")
    out, size = load_for_network(tmp_path / "lr.png", 10)
    assert size == (40, 20) and out.shape == (10, 10, 3)
    assert tuple(out[5, 1]) == (255, 0, 0) and tuple(out[5, 8]) == (0, 0, 255)
    # A JPEG stored sideways with EXIF orientation 6 (rotate 90 degrees clockwise to view): red is on top.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out, size = load_for_network(tmp_path / "rot.jpg", 10)
    assert size == (20, 40)
    assert out[1, 5, 0] > 200 > out[1, 5, 2] and out[8, 5, 2] > 200 > out[8, 5, 0]


@pytest.mark.parametrize("size", [24, 32, 64])
def test_a_jpeg_decoded_at_a_reduced_scale_gives_the_full_decode_s_view(size: int) -> None:
    """chelsea.jpg is 385 x 256: a draft decode rounds each side up, so the box must scale per axis."""
    path = Path(__file__).parent / "data" / "chelsea.jpg"
    out, (w, h) = load_for_network(path, size)
    with Image.open(path) as im:  # the reference: the whole file decoded, then the same centre view
        full = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR, box=view_of(w, h, size).seen)
    assert (w, h) == (385, 256) and out.shape == (size, size, 3)
    assert np.abs(out.astype(float) - np.asarray(full, dtype=float)).mean() < 8


def test_chunks_cover_the_folder_in_order_from_start_and_flag_unreadable_files(tmp_path: Path) -> None:
    red_folder(tmp_path)
    (tmp_path / "img_05_broken.png").write_bytes(b"\x89PNG not really")
    names = list(iter_images(tmp_path))
    assert count_images(tmp_path) == len(names) == 13
    chunks = list(ImageChunks(tmp_path, start=3, chunk=4, size=16))
    assert [c["start"] for c in chunks] == [3, 7, 11]
    assert [p for c in chunks for p in c["paths"]] == names[3:]
    images = torch.cat([c["images"] for c in chunks])
    assert images.shape == (10, 3, 16, 16) and images.dtype == torch.uint8
    ok = torch.cat([c["ok"] for c in chunks])
    errors = [e for c in chunks for e in c["errors"]]
    bad = names[3:].index("img_05_broken.png")
    assert ok.tolist() == [i != bad for i in range(10)] and errors[bad] and not any(errors[:bad])
    assert int(images[bad].sum()) == 0  # an unreadable file is a black image, never an exception
    expected = torch.from_numpy(load_for_network(tmp_path / names[3], 16)[0].copy()).permute(2, 0, 1)
    assert torch.equal(images[0], expected)


def test_chunks_split_between_workers_by_turns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(7):
        make_image(tmp_path / f"{i}.png", size=(8, 8), seed=i)

    class Info:
        id, num_workers = 1, 2

    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: Info)
    chunks = list(ImageChunks(tmp_path, start=0, chunk=2, size=8))
    assert [c["paths"] for c in chunks] == [["2.png", "3.png"], ["6.png"]]  # worker 1 of 2: chunks 1 and 3
