"""Tests for featviz_cli.outputs.layout: a render's files, interpolations and ``meta.json`` last."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from featviz_cli.errors import OutputError
from featviz_cli.outputs.files import sha256_bytes, sha256_file
from featviz_cli.outputs.layout import (
    Animation,
    alpha_file_names,
    image_file_name,
    snapshot_file_name,
    snapshot_image_name,
    write_alpha,
    write_png,
    write_render,
)
from featviz_cli.outputs.pictures import default_label_height, make_grid, to_uint8, webp_supported
from outputs_helpers import assert_plays, decoded_frames, fill_disk, temp_files
from outputs_helpers import random_images


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root``: relative path -> bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "RGB"
        return np.asarray(im)


def _replaced_names(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every file committed by ``os.replace``, in order."""
    order: list[str] = []
    real = os.replace

    def recording(src: Any, dst: Any) -> None:
        real(src, dst)
        order.append(Path(dst).name)

    monkeypatch.setattr(os, "replace", recording)
    return order


# ---------------------------------------------------------------- file names


def test_file_names() -> None:
    assert image_file_name(0, "features.3:12") == "000_features.3_12.png"
    assert image_file_name(7, "../x") == "007__x.png"
    assert image_file_name(1234, "a") == "1234_a.png"
    assert snapshot_file_name(2) == "snapshots/step_00002.png"
    assert snapshot_file_name(123456) == "snapshots/step_123456.png"


def test_write_png_record(tmp_path: Path) -> None:
    image = to_uint8(random_images(1, 5, 7))[0]
    record = write_png(tmp_path, "sub.png", image)
    data = (tmp_path / "sub.png").read_bytes()
    assert record == {"sha256": sha256_bytes(data), "bytes": len(data), "width": 7, "height": 5}
    assert np.array_equal(_read_png(tmp_path / "sub.png"), image)
    with pytest.raises(OutputError, match="outside"):
        write_png(tmp_path, "../escape.png", image)


# ---------------------------------------------------------------- write_render


def _render(out: Path, **kwargs: object) -> dict:
    imgs = random_images(3, 24, 24)
    labels = ["features.3:0", "features.3:1", "../../evil"]
    meta = {"name": "test", "loss": math.nan, "best": [math.inf, 1.0], "model": {"name": "tiny"}}
    return write_render(out, imgs, labels, meta, snapshots={10: random_images(3, 24, 24, seed=1), 2: imgs}, **kwargs)


def test_write_render_writes_everything_with_hashes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    files = _render(out)
    expected = {
        "000_features.3_0.png",
        "001_features.3_1.png",
        "002__.._evil.png",
        "grid.png",
        "snapshots/step_00002.png",
        "snapshots/step_00010.png",
        *(f"snapshots/step_{step:05d}/{name}" for step in (2, 10)
          for name in ("000_features.3_0.png", "001_features.3_1.png", "002__.._evil.png")),
    }
    assert set(files) == expected
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == expected | {"meta.json"}
    assert temp_files(tmp_path) == []
    assert not (tmp_path / "evil").exists()

    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"), parse_constant=lambda c: pytest.fail(c))
    assert meta["loss"] is None and meta["best"] == [None, 1.0]
    assert meta["files"] == files
    for rel, info in files.items():
        path = out / rel
        assert sha256_file(path) == info["sha256"] == sha256_bytes(path.read_bytes())
        assert path.stat().st_size == info["bytes"]
        with Image.open(path) as im:
            assert im.size == (info["width"], info["height"])
    assert files["000_features.3_0.png"]["width"] == 24


def test_write_render_pictures_are_the_inputs(tmp_path: Path) -> None:
    """Each PNG decodes to its image, the grids to make_grid of the images (snapshots in step order)."""
    out = tmp_path / "out"
    files = _render(out)
    imgs, later = to_uint8(random_images(3, 24, 24)), to_uint8(random_images(3, 24, 24, seed=1))
    labels = ["features.3:0", "features.3:1", "../../evil"]
    for i, name in enumerate(["000_features.3_0.png", "001_features.3_1.png", "002__.._evil.png"]):
        assert np.array_equal(_read_png(out / name), imgs[i])
    assert np.array_equal(_read_png(out / "grid.png"), make_grid(imgs, labels))
    assert np.array_equal(_read_png(out / "snapshots/step_00002.png"), make_grid(imgs, labels))
    assert np.array_equal(_read_png(out / "snapshots/step_00010.png"), make_grid(later, labels))
    names = ["000_features.3_0.png", "001_features.3_1.png", "002__.._evil.png"]
    assert list(files) == [*names, "grid.png", "snapshots/step_00002.png", *(f"snapshots/step_00002/{n}" for n in names),
                           "snapshots/step_00010.png", *(f"snapshots/step_00010/{n}" for n in names)]


def test_write_render_meta_json_is_written_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order = _replaced_names(monkeypatch)
    _render(tmp_path / "out")
    assert order[-1] == "meta.json" and order.count("meta.json") == 1
    assert len(order) == 13


def test_write_render_is_deterministic_and_replaces(tmp_path: Path) -> None:
    first = _render(tmp_path / "a")
    second = _render(tmp_path / "b")
    assert first == second
    for rel in [*first, "meta.json"]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    third = write_render(tmp_path / "a", np.zeros((1, 8, 8, 3)), ["features.3:0"], {"run": 2}, grid=False)
    assert set(third) == {"000_features.3_0.png"}
    assert (tmp_path / "a" / "000_features.3_0.png").read_bytes() != (tmp_path / "b" / "000_features.3_0.png").read_bytes()
    assert json.loads((tmp_path / "a" / "meta.json").read_text())["run"] == 2


def test_write_render_options_and_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meta = {"k": 1}
    files = write_render(tmp_path / "o", random_images(2, 8, 8), ["a", "b"], meta, per_image=False,
                         stem_names=["x", "y"], grid_labels=False)
    assert set(files) == {"grid.png"}
    assert "files" not in meta, "the caller's meta must not be modified"
    assert files["grid.png"]["height"] == 8 + 2 * 2

    files = write_render(tmp_path / "s", random_images(2, 8, 8), ["a", "b"], {}, grid=False, stem_names=["x", "y"])
    assert set(files) == {"000_x.png", "001_y.png"}

    with pytest.raises(ValueError, match="labels"):
        write_render(tmp_path / "bad", random_images(2, 8, 8), ["a"], {})

    def fail(src: object, dst: object) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OutputError, match="Permission denied"):
        write_render(tmp_path / "f", random_images(1, 8, 8), ["a"], {})
    assert not (tmp_path / "f" / "meta.json").exists()
    assert temp_files(tmp_path) == []


def test_write_render_disk_full_halfway_then_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills while the grid is written over an older render: the files already replaced are
    complete, the grid is the old one, no temp and no ``meta.json`` are left; the rerun gives the bytes
    of an uninterrupted render."""
    reference = tmp_path / "reference"
    _render(reference)
    out = tmp_path / "out"
    write_render(out, random_images(3, 24, 24, seed=4), ["old0", "old1", "old2"], {"old": True},
                 stem_names=["features.3:0", "features.3:1", "../../evil"])
    old_grid = (out / "grid.png").read_bytes()
    fill_disk(monkeypatch, lambda size: size // 2, files_before=3)  # the 4th file written is grid.png
    with pytest.raises(OutputError, match="No space left") as info:
        _render(out)
    assert str(out / "grid.png") in str(info.value)
    monkeypatch.undo()

    ref = _tree(reference)
    now = _tree(out)
    assert "meta.json" not in now, "no meta.json may describe a half-written render"
    assert temp_files(tmp_path) == []
    assert now["grid.png"] == old_grid
    for name in ["000_features.3_0.png", "001_features.3_1.png", "002__.._evil.png"]:
        assert now[name] == ref[name], f"{name} is not the complete new file"

    _render(out)
    assert _tree(out) == ref


def test_write_render_accepts_torch_tensors(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    imgs = torch.rand(2, 8, 8, 3, dtype=torch.bfloat16, requires_grad=True)
    files = write_render(tmp_path, imgs, ["a", "b"], {"loss": torch.tensor(float("nan"))})
    assert "grid.png" in files
    assert json.loads((tmp_path / "meta.json").read_text())["loss"] is None


# ---------------------------------------------------------------- write_render with an animation


def test_write_animation_files_and_meta_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    colours = rng.integers(0, 256, (30, 3), dtype=np.uint8)
    frames = colours[rng.integers(0, 30, (4, 10, 12))]  # few colours: the GIF holds them exactly
    out = tmp_path / "out"
    (out / "snapshots").mkdir(parents=True)
    (out / "meta.json").write_text('{"stale": true}')
    order = _replaced_names(monkeypatch)
    files = write_render(out, frames, ["f0", "f1", "f2", "f3"], {"objective": "interpolate(a, b)"},
                         animation=Animation(duration_ms=80), per_image=False)
    webp = webp_supported()
    expected = ["grid.png", "strip.png", "interpolation.gif"] + (["interpolation.webp"] if webp else [])
    assert list(files) == expected
    assert order == ["strip.png", "interpolation.gif"] + (["interpolation.webp"] if webp else []) + [
        "grid.png", "meta.json"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta == {"objective": "interpolate(a, b)", "files": files}
    for rel, info in files.items():
        assert sha256_file(out / rel) == info["sha256"] and (out / rel).stat().st_size == info["bytes"]
    assert files["interpolation.gif"]["width"] == 12 and files["interpolation.gif"]["height"] == 10

    strip = np.full((10 + 4, 4 * 12 + 5 * 2, 3), 255, dtype=np.uint8)  # one row, 2 px white padding
    for i, frame in enumerate(frames):
        strip[2:12, 2 + i * 14 : 14 + i * 14] = frame
    assert np.array_equal(_read_png(out / "strip.png"), strip)

    for name in ["interpolation.gif"] + (["interpolation.webp"] if webp else []):
        assert_plays((out / name).read_bytes(), frames, [0, 1, 2, 3, 2, 1], 80)


def test_write_animation_without_webp(tmp_path: Path) -> None:
    files = write_render(tmp_path, random_images(3, 8, 8), ["a", "b", "c"], {},
                         animation=Animation(webp=False, pingpong=False))
    assert "interpolation.webp" not in files and not (tmp_path / "interpolation.webp").exists()
    assert {"000_a.png", "001_b.png", "002_c.png", "grid.png", "strip.png", "interpolation.gif"} == set(files)
    decoded, _, _ = decoded_frames((tmp_path / "interpolation.gif").read_bytes())
    assert len(decoded) == 3


# ---------------------------------------------------------------- per-image snapshots and transparency maps


def _cells(grid: np.ndarray, n: int, h: int, w: int, labelled: bool, pad: int = 2) -> list[np.ndarray]:
    """The image cells of a ``make_grid`` grid, cut out by the layout's arithmetic."""
    cols = math.ceil(math.sqrt(n))
    strip = default_label_height() if labelled else 0
    return [grid[pad + (i // cols) * (h + strip + pad):][:h, pad + (i % cols) * (w + pad):][:, :w] for i in range(n)]


@pytest.mark.parametrize("labelled", [True, False])
def test_snapshot_images_equal_the_cells_of_their_grid(tmp_path: Path, labelled: bool) -> None:
    out = tmp_path / "out"
    snaps = {4: random_images(5, 12, 12, seed=4), 9: random_images(5, 12, 12, seed=9)}
    labels = [f"layer:{i}" for i in range(5)]
    files = write_render(out, random_images(5, 12, 12), labels, {}, snapshots=snaps, grid_labels=labelled)
    for step in snaps:
        cells = _cells(_read_png(out / snapshot_file_name(step)), 5, 12, 12, labelled)
        for i, label in enumerate(labels):
            name = snapshot_image_name(step, i, label)
            assert name == f"snapshots/step_{step:05d}/{i:03d}_layer_{i}.png" and name in files
            assert np.array_equal(_read_png(out / name), cells[i])
            assert np.array_equal(cells[i], to_uint8(snaps[step])[i])
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["files"] == files
    no_images = write_render(tmp_path / "b", random_images(5, 12, 12), labels, {}, snapshots=snaps, per_image=False)
    assert not any(name.count("/") > 1 or name.startswith("snapshots/step_00004/") for name in no_images)


def test_alpha_maps_are_written_as_heat_maps_and_rgba_and_listed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    imgs = random_images(2, 10, 14)
    alpha = np.random.default_rng(3).random((2, 10, 14))
    alpha[0, 0, 0], alpha[0, 0, 1] = 0.0, 1.0
    files = write_render(out, imgs, ["a:0", "b c"], {}, alpha=alpha)
    for i, stem in enumerate(["a:0", "b c"]):
        heat, rgba = alpha_file_names(i, stem)
        assert (heat, rgba) == (f"alpha/{image_file_name(i, stem)[:-4]}_heat.png",
                                f"alpha/{image_file_name(i, stem)[:-4]}_rgba.png")
        assert heat in files and rgba in files
        with Image.open(out / rgba) as im:
            assert im.mode == "RGBA"
            got = np.asarray(im)
        assert np.array_equal(got[..., :3], to_uint8(imgs)[i])
        assert np.array_equal(got[..., 3], np.rint(alpha[i] * 255).astype(np.uint8))
        heat_px = _read_png(out / heat).astype(int)
        brightness = heat_px.sum(-1)
        order = np.argsort(alpha[i].ravel())
        assert brightness.ravel()[order[-1]] > brightness.ravel()[order[0]]  # brighter where the map is larger
    assert tuple(_read_png(out / alpha_file_names(0, "a:0")[0])[0, 0]) == (0, 0, 4)
    assert tuple(_read_png(out / alpha_file_names(0, "a:0")[0])[0, 1]) == (252, 255, 164)
    assert json.loads((out / "meta.json").read_text(encoding="utf-8"))["files"] == files
    assert set(write_alpha(tmp_path / "u", "units/l/00001_alpha.png", "units/l/00001_rgba.png", imgs[0], alpha[0])) == {
        "units/l/00001_alpha.png", "units/l/00001_rgba.png"}
