"""Tests for featviz_cli.outputs.pictures: uint8 conversion, PNGs, labelled grids, GIF and WebP.

Grids are checked against a grid assembled here with numpy from the same images, animations by
decoding them back with Pillow (and the GIF's blocks by hand) and comparing frame by frame.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from featviz_cli.outputs.pictures import (
    default_label_height,
    fit_text,
    gif_bytes,
    heat_map,
    label_font,
    make_grid,
    png_bytes,
    to_uint8,
    webp_bytes,
    webp_supported,
    with_alpha,
)
from outputs_helpers import assert_plays, decoded_frames
from outputs_helpers import random_images


def _decode(data: bytes) -> np.ndarray:
    """PNG bytes back to an (H, W, 3) array."""
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGB"
        return np.asarray(im)


def _few_colour_frames(n: int, h: int = 12, w: int = 10, seed: int = 0) -> np.ndarray:
    """``n`` distinct uint8 frames drawn from 40 colours, so a 256-colour palette holds them exactly."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, (40, 3), dtype=np.uint8)
    return colours[rng.integers(0, len(colours), (n, h, w))]


# ---------------------------------------------------------------- arrays and PNGs


def test_to_uint8_rounds_half_to_even_and_clips() -> None:
    values = np.array([-1.0, 0.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.5, 1.0, 2.0, np.nan])
    img = np.broadcast_to(values[None, None, :, None], (1, 1, len(values), 3))
    out = to_uint8(img)
    assert out.dtype == np.uint8 and out.shape == (1, 1, len(values), 3)
    assert out[0, 0, :, 0].tolist() == [0, 0, 0, 2, 2, 128, 255, 255, 0]


def test_to_uint8_integers_and_infinities() -> None:
    ints = np.array([[[[-5, 0, 300]]]], dtype=np.int64)
    assert to_uint8(ints).tolist() == [[[[0, 0, 255]]]]
    inf = np.array([[[[np.inf, -np.inf, 0.25]]]])
    assert to_uint8(inf).tolist() == [[[[255, 0, 64]]]]


def test_to_uint8_accepts_uint8_single_image_and_tensor_like() -> None:
    img = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    assert np.array_equal(to_uint8(img)[0], img)

    class FakeTensor:
        def detach(self) -> "FakeTensor":
            return self

        def cpu(self) -> "FakeTensor":
            return self

        def numpy(self) -> np.ndarray:
            return np.ones((1, 2, 2, 3), dtype=np.float32)

    assert to_uint8(FakeTensor()).tolist() == np.full((1, 2, 2, 3), 255).tolist()
    with pytest.raises(ValueError, match="N, H, W, 3"):
        to_uint8(np.zeros((1, 3, 4, 4)))


def test_png_round_trip_and_deterministic() -> None:
    img = to_uint8(random_images(1, 17, 23))[0]
    data = png_bytes(img)
    assert np.array_equal(_decode(data), img)
    assert png_bytes(img.copy()) == data


def test_png_has_no_metadata_chunks() -> None:
    """Only IHDR, IDAT and IEND: nothing (time, software) that could differ between runs."""
    data = png_bytes(to_uint8(random_images(1, 9, 7))[0])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append(data[pos + 4 : pos + 8].decode("ascii"))
        pos += 12 + length
    assert chunks[0] == "IHDR" and chunks[-1] == "IEND" and set(chunks[1:-1]) == {"IDAT"}
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(np.zeros((4, 4, 3)))


# ---------------------------------------------------------------- grids


def _reference_grid(images: np.ndarray, cols: int, pad: int, strip_h: int) -> tuple[np.ndarray, list[tuple]]:
    """The grid assembled independently: white canvas, image ``i`` at row ``i // cols``, column ``i % cols``.

    Returns the grid with white label strips and the strip boxes ``(y0, y1, x0, x1)``.
    """
    n, h, w, _ = images.shape
    rows = -(-n // cols)
    height = pad + rows * (h + strip_h + pad)
    width = pad + cols * (w + pad)
    grid = np.full((height, width, 3), 255, dtype=np.uint8)
    strips = []
    for i, image in enumerate(images):
        top = pad + (i // cols) * (h + strip_h + pad)
        left = pad + (i % cols) * (w + pad)
        grid[top : top + h, left : left + w] = image
        strips.append((top + h, top + h + strip_h, left, left + w))
    return grid, strips


def _ink(region: np.ndarray) -> np.ndarray:
    """The black pixels of a white-and-black region, cropped to their bounding box (bool)."""
    dark = region[..., 0] < 128
    ys, xs = np.nonzero(dark)
    return dark[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _drawn(text: str) -> np.ndarray:
    """``text`` drawn on its own with Pillow's bitmap font, cropped to its ink."""
    font = getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)()
    canvas = Image.new("RGB", (400, 40), (255, 255, 255))
    ImageDraw.Draw(canvas).text((10, 10), text, fill=(0, 0, 0), font=font)
    return _ink(np.asarray(canvas))


@pytest.mark.parametrize(("n", "cols", "rows"), [(1, 1, 1), (3, 2, 2), (4, 2, 2), (5, 3, 2)])
def test_grid_dimensions(n: int, cols: int, rows: int) -> None:
    h, w, pad = 32, 40, 2
    lh = default_label_height()
    assert 12 <= lh <= 14
    labelled = make_grid(to_uint8(random_images(n, h, w)), [f"unit {i}" for i in range(n)], pad=pad)
    assert labelled.shape == (rows * (h + lh) + (rows + 1) * pad, cols * w + (cols + 1) * pad, 3)
    plain = make_grid(to_uint8(random_images(n, h, w)), None, pad=pad)
    assert plain.shape == (rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, 3)


@pytest.mark.parametrize(("n", "ncols", "pad"), [(1, None, 2), (5, None, 2), (7, 3, 0), (4, 4, 5), (3, 9, 1)])
def test_unlabelled_grid_equals_the_reference(n: int, ncols: int | None, pad: int) -> None:
    images = to_uint8(random_images(n, 9, 13, seed=n))
    cols = min(n, ncols if ncols is not None else int(np.ceil(np.sqrt(n))))
    expected, _ = _reference_grid(images, cols, pad, 0)
    grid = make_grid(images, None, ncols=ncols, pad=pad)
    assert grid.dtype == np.uint8
    assert np.array_equal(grid, expected)


def test_labelled_grid_equals_the_reference_with_label_strips() -> None:
    """Pixel by pixel outside the strips; inside, each label's ink as Pillow draws it alone, centred."""
    images = to_uint8(random_images(5, 24, 48, seed=3))
    labels = ["conv2:3", "", "b", "features.3:12 and far too long to fit", "x"]
    pad, lh = 2, default_label_height()
    grid = make_grid(images, labels, pad=pad)
    expected, strips = _reference_grid(images, 3, pad, lh)
    outside = np.ones(grid.shape[:2], dtype=bool)
    for y0, y1, x0, x1 in strips:
        outside[y0:y1, x0:x1] = False
    assert grid.shape == expected.shape
    assert np.array_equal(grid[outside], expected[outside])
    for label, (y0, y1, x0, x1) in zip(labels, strips):
        strip = grid[y0:y1, x0:x1]
        assert set(np.unique(strip)) <= {0, 255} and (strip == strip[..., :1]).all(), "black on white"
        if not label:
            assert (strip == 255).all(), "an empty label leaves its strip white"
            continue
        shown = fit_text(label, label_font(), x1 - x0)
        assert np.array_equal(_ink(strip), _drawn(shown)), label
        ys, xs = np.nonzero(strip[..., 0] < 128)
        assert abs((xs.min() + xs.max() + 1) / 2 - (x1 - x0) / 2) <= 1, f"{label!r} is not centred"
        assert ys.min() >= 1 and ys.max() <= lh - 2, f"{label!r} touches the strip's edge"
    assert fit_text(labels[3], label_font(), 48).startswith("...")


def test_grid_places_images_unscaled_and_labels_drawn() -> None:
    imgs = to_uint8(random_images(3, 32, 32))
    pad, lh = 2, default_label_height()
    grid = make_grid(imgs, ["features.3:12", "", "a very long label that cannot fit"], pad=pad)
    assert np.array_equal(grid[pad : pad + 32, pad : pad + 32], imgs[0])
    x1 = pad + 32 + pad
    assert np.array_equal(grid[pad : pad + 32, x1 : x1 + 32], imgs[1])
    strip0 = grid[pad + 32 : pad + 32 + lh, pad : pad + 32]
    strip1 = grid[pad + 32 : pad + 32 + lh, x1 : x1 + 32]
    assert (strip0 < 128).any(), "label strip is blank"
    assert (strip1 == 255).all(), "an empty label should leave the strip white"
    assert (grid[:pad] == 255).all() and (grid[:, :pad] == 255).all()


def test_grid_label_truncation_keeps_the_end() -> None:
    font = label_font()
    fitted = fit_text("features.3:12", font, 32)
    assert fitted.startswith("...") and fitted.endswith("12")
    assert font.getlength(fitted) <= 32
    assert fit_text("ab", font, 32) == "ab"
    shown = fitted[3:]
    assert "features.3:12".endswith(shown)
    longer = "features.3:12"[: -len(shown)][-1:] + shown
    assert font.getlength("..." + longer.lstrip(".")) > 32, "the longest end that fits is shown"


def test_grid_unicode_label_and_bad_arguments() -> None:
    imgs = to_uint8(random_images(2, 16, 16))
    make_grid(imgs, ["日本語", "ø…"])  # must not raise
    wide = make_grid(to_uint8(random_images(2, 16, 40)), ["日本語", "ø…"], pad=2)
    lh = default_label_height()
    assert np.array_equal(_ink(wide[18 : 18 + lh, 2:42]), _drawn("???")), "undrawable characters become '?'"
    assert np.array_equal(_ink(wide[18 : 18 + lh, 44:84]), _drawn("ø?")), "Latin-1 is drawn, the rest is '?'"
    with pytest.raises(ValueError, match="labels"):
        make_grid(imgs, ["one"])
    with pytest.raises(ValueError, match="at least one"):
        make_grid(np.zeros((0, 4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="pad"):
        make_grid(imgs, pad=-1)
    with pytest.raises(ValueError, match="ncols"):
        make_grid(imgs, ncols=0)


def test_grid_explicit_ncols() -> None:
    grid = make_grid(to_uint8(random_images(5, 8, 8)), None, ncols=5, pad=1)
    assert grid.shape == (8 + 2, 5 * 8 + 6, 3)


def test_grid_label_height_option() -> None:
    images = to_uint8(random_images(2, 8, 30))
    grid = make_grid(images, ["a", "b"], pad=1, label_height=20)
    expected, strips = _reference_grid(images, 2, 1, 20)
    assert grid.shape == expected.shape
    assert not (grid[strips[0][0] : strips[0][1], strips[0][2] : strips[0][3]] == 255).all()
    assert np.array_equal(make_grid(images, ["a", "b"], pad=1, label_height=0), _reference_grid(images, 2, 1, 0)[0])


# ---------------------------------------------------------------- animations


def _gif_blocks(data: bytes) -> dict[str, Any]:
    """The GIF's structure read by hand (GIF89a spec): global colour table, loop count, and per frame
    its box, colour table (None: uses the global one), delay (1/100 s) and disposal method."""
    assert data[:6] == b"GIF89a"
    packed, pos = data[10], 13
    global_table = None
    if packed & 0x80:
        size = 3 * 2 ** ((packed & 7) + 1)
        global_table, pos = data[pos : pos + size], pos + size
    frames: list[dict[str, Any]] = []
    loop, control = None, None
    while data[pos] != 0x3B:
        if data[pos] == 0x21:  # extension: label, sub-blocks
            label, pos, body = data[pos + 1], pos + 2, b""
            while data[pos]:
                body, pos = body + data[pos + 1 : pos + 1 + data[pos]], pos + 1 + data[pos]
            pos += 1
            if label == 0xF9:
                control = {"delay": int.from_bytes(body[1:3], "little"), "disposal": (body[0] >> 2) & 7}
            elif label == 0xFF and body[:11] == b"NETSCAPE2.0":
                loop = int.from_bytes(body[12:14], "little")
        elif data[pos] == 0x2C:  # image descriptor, optional local table, LZW data
            box = tuple(int.from_bytes(data[pos + 1 + 2 * i : pos + 3 + 2 * i], "little") for i in range(4))
            flags, pos, table = data[pos + 9], pos + 10, None
            if flags & 0x80:
                size = 3 * 2 ** ((flags & 7) + 1)
                table, pos = data[pos : pos + size], pos + size
            pos += 1
            while data[pos]:
                pos += 1 + data[pos]
            pos += 1
            frames.append({"box": box, "table": table, **(control or {})})
            control = None
        else:
            raise AssertionError(f"unexpected GIF block {data[pos]:#x} at {pos}")
    return {"global_table": global_table, "loop": loop, "frames": frames}


@pytest.mark.parametrize(
    ("n", "pingpong", "order"),
    [(4, True, [0, 1, 2, 3, 2, 1]), (4, False, [0, 1, 2, 3]), (3, True, [0, 1, 2, 1]), (2, True, [0, 1]),
     (1, True, [0])],
)
def test_gif_decodes_to_the_input_frames(n: int, pingpong: bool, order: list[int]) -> None:
    frames = _few_colour_frames(n, seed=n)
    assert_plays(gif_bytes(frames, duration_ms=70, pingpong=pingpong), frames, order, 70)


def test_gif_structure_one_shared_palette() -> None:
    """Every frame is a full frame with the global palette's colours (no flicker), 15/100 s, looping."""
    frames = to_uint8(random_images(4, 16, 16))  # thousands of colours: the palette must be shared to hold still
    blocks = _gif_blocks(gif_bytes(frames))
    assert blocks["loop"] == 0
    assert len(blocks["global_table"]) == 3 * 256
    assert len(blocks["frames"]) == 6
    for frame in blocks["frames"]:
        assert frame["box"] == (0, 0, 16, 16)
        assert frame["table"] in (None, blocks["global_table"])
        assert frame["delay"] == 15 and frame["disposal"] == 1


def test_gif_keeps_colours_of_many_colour_frames() -> None:
    frames = to_uint8(random_images(3, 8, 8))
    decoded, _, _ = decoded_frames(gif_bytes(frames, pingpong=False))
    for got, want in zip(decoded, frames):
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 12
    flat = np.zeros((2, 8, 8, 3))
    flat[..., 0] = 1.0
    decoded, _, _ = decoded_frames(gif_bytes(flat, pingpong=False))
    assert all((f == (255, 0, 0)).all() for f in decoded)


@pytest.mark.skipif(not webp_supported(), reason="this Pillow cannot write WebP")
@pytest.mark.parametrize(("pingpong", "order"), [(True, [0, 1, 2, 3, 2, 1]), (False, [0, 1, 2, 3])])
def test_webp_decodes_to_the_input_frames(pingpong: bool, order: list[int]) -> None:
    frames = to_uint8(random_images(4, 10, 14, seed=5))  # lossless: every pixel back exactly
    data = webp_bytes(frames, duration_ms=90, pingpong=pingpong)
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert_plays(data, frames, order, 90)


@pytest.mark.skipif(not webp_supported(), reason="this Pillow cannot write WebP")
def test_webp_lossy_is_close() -> None:
    frames = to_uint8(random_images(2, 16, 16))
    decoded, _, _ = decoded_frames(webp_bytes(frames, pingpong=False, lossless=False))
    assert len(decoded) == 2
    assert all(got.shape == want.shape for got, want in zip(decoded, frames))


def test_animations_same_bytes_in_another_process() -> None:
    """GIF and WebP bytes do not depend on the process (hash seed, palette caches)."""
    frames = _few_colour_frames(3, seed=9)
    code = (
        "import sys, numpy as np\n"
        "from featviz_cli.outputs.pictures import gif_bytes, webp_bytes, webp_supported\n"
        "frames = np.frombuffer(sys.stdin.buffer.read(), dtype=np.uint8).reshape(3, 12, 10, 3)\n"
        "gif = gif_bytes(frames)\n"
        "webp = webp_bytes(frames) if webp_supported() else b''\n"
        "sys.stdout.buffer.write(len(gif).to_bytes(8, 'big') + gif + webp)\n"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, input=frames.tobytes(), capture_output=True,
                          timeout=60, env={**os.environ, "PYTHONHASHSEED": "7"})
    assert proc.returncode == 0, proc.stderr
    size = int.from_bytes(proc.stdout[:8], "big")
    gif, webp = proc.stdout[8 : 8 + size], proc.stdout[8 + size :]
    assert gif == gif_bytes(frames)
    assert webp == (webp_bytes(frames) if webp_supported() else b"")


def test_module_does_not_import_torch() -> None:
    code = (
        "import sys, featviz_cli\n"
        "if 'torch' in sys.modules: sys.exit(3)\n"
        "import featviz_cli.outputs\n"
        "sys.exit(4 if 'torch' in sys.modules else 0)\n"
    )
    root = Path(__file__).resolve().parents[1]
    rc = subprocess.run([sys.executable, "-c", code], cwd=root, timeout=60).returncode
    if rc == 3:
        pytest.skip("featviz_cli/__init__.py imports torch")
    assert rc == 0, "featviz_cli.outputs imports torch at import time"


def test_heat_map_runs_from_dark_to_pale_and_rgba_pngs_keep_their_alpha() -> None:
    ramp = np.linspace(0, 1, 61).reshape(1, 61)
    heat = heat_map(ramp)
    assert heat.shape == (1, 61, 3) and heat.dtype == np.uint8
    assert tuple(heat[0, 0]) == (0, 0, 4) and tuple(heat[0, -1]) == (252, 255, 164)
    brightness = heat[0].astype(int).sum(-1)
    assert (np.diff(brightness) > 0).all()  # brighter all the way up
    assert np.array_equal(heat_map(np.full((1, 2), 7.0)), heat_map(np.ones((1, 2))))  # clipped to [0, 1]
    rgba = with_alpha(np.zeros((2, 3, 3)), np.array([[0.0, 0.5, 1.0], [1.0, 1.0, 0.25]]))
    assert rgba.shape == (2, 3, 4) and rgba[..., 3].tolist() == [[0, 128, 255], [255, 255, 64]]
    with Image.open(io.BytesIO(png_bytes(rgba))) as im:
        assert im.mode == "RGBA" and np.array_equal(np.asarray(im), rgba)
    with pytest.raises(ValueError, match="differ in size"):
        with_alpha(np.zeros((2, 3, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\(H, W\) map"):
        heat_map(np.zeros((2, 2, 2)))
