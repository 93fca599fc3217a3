"""Tests for featviz_cli.outputs: atomic writes, PNGs, grids, names, paths, write_render."""
from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featviz_cli import outputs
from featviz_cli.errors import OutputError
from featviz_cli.outputs import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    default_label_height,
    make_grid,
    png_bytes,
    prepare_output_dir,
    safe_join,
    sanitize_filename,
    sha256_bytes,
    sha256_file,
    to_uint8,
    write_render,
)


def _images(n: int, h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    """``n`` random float images in [0, 1]."""
    return np.random.default_rng(seed).random((n, h, w, 3))


def _temp_files(directory: Path) -> list[Path]:
    """Leftover temp files in ``directory`` (recursively)."""
    return [p for p in directory.rglob("*") if p.name.endswith(".tmp")]


def _decode(data: bytes) -> np.ndarray:
    """PNG bytes back to an (H, W, 3) array."""
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGB"
        return np.asarray(im)


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_content_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert _temp_files(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_atomic_write_failure_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "meta.json"
    target.write_bytes(b"old")

    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OutputError) as info:
        atomic_write_bytes(target, b"new")
    message = str(info.value)
    assert str(target) in message
    assert "\n" not in message
    assert "writable" in message
    assert target.read_bytes() == b"old"
    assert _temp_files(tmp_path) == []


def test_atomic_write_into_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="missing"):
        atomic_write_bytes(tmp_path / "missing" / "x.png", b"x")


def test_atomic_write_uses_umask_permissions(tmp_path: Path) -> None:
    target = tmp_path / "perm.txt"
    atomic_write_text(target, "x")
    reference = tmp_path / "ref.txt"
    reference.write_text("x")
    assert target.stat().st_mode == reference.stat().st_mode


def test_atomic_write_json_nan_inf_become_null(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    obj = {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": "ü", "d": np.float32(np.nan), "e": np.arange(3)}
    atomic_write_json(target, obj)
    text = target.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert "ü" in text
    assert "  " in text  # indented
    parsed = json.loads(text, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    assert parsed == {"a": None, "b": [None, None, 1.5], "c": "ü", "d": None, "e": [0, 1, 2]}


def test_json_rejects_unknown_objects(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="object"):
        atomic_write_json(tmp_path / "m.json", {"x": object()})


# ---------------------------------------------------------------- images


def test_to_uint8_rounds_half_to_even_and_clips() -> None:
    values = np.array([-1.0, 0.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.5, 1.0, 2.0, np.nan])
    img = np.broadcast_to(values[None, None, :, None], (1, 1, len(values), 3))
    out = to_uint8(img)
    assert out.dtype == np.uint8 and out.shape == (1, 1, len(values), 3)
    assert out[0, 0, :, 0].tolist() == [0, 0, 0, 2, 2, 128, 255, 255, 0]


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
    img = to_uint8(_images(1, 17, 23))[0]
    data = png_bytes(img)
    assert np.array_equal(_decode(data), img)
    assert png_bytes(img.copy()) == data


# ---------------------------------------------------------------- grids


@pytest.mark.parametrize(("n", "cols", "rows"), [(1, 1, 1), (3, 2, 2), (4, 2, 2), (5, 3, 2)])
def test_grid_dimensions(n: int, cols: int, rows: int) -> None:
    h, w, pad = 32, 40, 2
    lh = default_label_height()
    assert 12 <= lh <= 14
    labelled = make_grid(to_uint8(_images(n, h, w)), [f"unit {i}" for i in range(n)], pad=pad)
    assert labelled.shape == (rows * (h + lh) + (rows + 1) * pad, cols * w + (cols + 1) * pad, 3)
    plain = make_grid(to_uint8(_images(n, h, w)), None, pad=pad)
    assert plain.shape == (rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, 3)


def test_grid_places_images_unscaled_and_labels_drawn() -> None:
    imgs = to_uint8(_images(3, 32, 32))
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
    assert np.array_equal(make_grid(imgs, ["features.3:12", "", "x"]), make_grid(imgs, ["features.3:12", "", "x"]))


def test_grid_label_truncation_keeps_the_end() -> None:
    font = outputs._label_font()
    fitted = outputs._fit_text("features.3:12", font, 32)
    assert fitted.startswith("...") and fitted.endswith("12")
    assert font.getlength(fitted) <= 32
    assert outputs._fit_text("ab", font, 32) == "ab"


def test_grid_unicode_label_and_bad_arguments() -> None:
    imgs = to_uint8(_images(2, 16, 16))
    make_grid(imgs, ["日本語", "ø…"])  # must not raise
    with pytest.raises(ValueError, match="labels"):
        make_grid(imgs, ["one"])
    with pytest.raises(ValueError, match="at least one"):
        make_grid(np.zeros((0, 4, 4, 3), dtype=np.uint8))


def test_grid_explicit_ncols() -> None:
    grid = make_grid(to_uint8(_images(5, 8, 8)), None, ncols=5, pad=1)
    assert grid.shape == (8 + 2, 5 * 8 + 6, 3)


# ---------------------------------------------------------------- names and paths


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("features.3/conv:0", "features.3_conv_0"),
        ("_blocks.10", "_blocks.10"),
        ("mixed4a", "mixed4a"),
        ("a  b//c", "a_b_c"),
        ("...hidden", "hidden"),
        ("unit.", "unit"),
    ],
)
def test_sanitize_filename_examples(raw: str, expected: str) -> None:
    assert sanitize_filename(raw) == expected


@pytest.mark.parametrize("raw", ["../../etc/passwd", "", ".", "..", "/", "日本語", "é/ü", "x" * 500, "a\\b\x00c", "-"])
def test_sanitize_filename_always_safe(raw: str) -> None:
    name = sanitize_filename(raw)
    assert name and name not in {".", ".."}
    assert len(name) <= 100
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith(".")
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name)


def test_sanitize_filename_specific_cases() -> None:
    assert sanitize_filename("../../etc/passwd") == "_.._etc_passwd"
    assert sanitize_filename("") == "unnamed"
    assert sanitize_filename("日本語").startswith("unnamed-")
    assert sanitize_filename("日本語") != sanitize_filename("中文")
    assert sanitize_filename("conv_é") == "conv"
    long_a, long_b = "x" * 300 + "a", "x" * 300 + "b"
    assert len(sanitize_filename(long_a)) == 100
    assert sanitize_filename(long_a) != sanitize_filename(long_b)
    assert sanitize_filename(long_a) == sanitize_filename(long_a)


def test_safe_join_accepts_inside_and_refuses_escapes(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "grid.png") == (tmp_path / "grid.png").resolve()
    assert safe_join(tmp_path, "snapshots/step_00001.png").parent.name == "snapshots"
    for bad in ["../x.png", "a/../../x.png", "/etc/passwd", ".", "", "x\x00.png"]:
        with pytest.raises(OutputError):
            safe_join(tmp_path, bad)


def test_safe_join_refuses_symlink_escape(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    (root / "link.png").symlink_to(tmp_path / "outside.png")
    with pytest.raises(OutputError, match="outside"):
        safe_join(root, "link.png")


# ---------------------------------------------------------------- output directory


def test_prepare_output_dir_creates_parents(tmp_path: Path) -> None:
    out = prepare_output_dir(tmp_path / "a" / "b")
    assert out.is_dir()
    assert list(out.iterdir()) == []
    assert prepare_output_dir(out) == out


def test_prepare_output_dir_on_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(OutputError, match="not a directory") as info:
        prepare_output_dir(target)
    assert str(target) in str(info.value)


def test_prepare_output_dir_under_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file.txt" / "out"
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OutputError) as info:
        prepare_output_dir(target)
    assert str(target) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores directory permissions")
def test_prepare_output_dir_unwritable(tmp_path: Path) -> None:
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="writable") as info:
            prepare_output_dir(target)
        assert str(target) in str(info.value)
    finally:
        target.chmod(0o700)


def test_prepare_output_dir_write_test_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The write test's failure path, independent of running as root."""

    def refuse(directory: Path, name: str) -> tuple[int, Path]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(outputs, "_create_temp", refuse)
    with pytest.raises(OutputError, match="writable") as info:
        prepare_output_dir(tmp_path / "out")
    assert str(tmp_path / "out") in str(info.value)


# ---------------------------------------------------------------- write_render


def _render(out: Path, **kwargs: object) -> dict:
    imgs = _images(3, 24, 24)
    labels = ["features.3:0", "features.3:1", "../../evil"]
    meta = {"name": "test", "loss": math.nan, "best": [math.inf, 1.0], "model": {"name": "tiny"}}
    return write_render(out, imgs, labels, meta, snapshots={10: _images(3, 24, 24, seed=1), 2: imgs}, **kwargs)


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
    }
    assert set(files) == expected
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == expected | {"meta.json"}
    assert _temp_files(tmp_path) == []
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


def test_write_render_meta_json_is_written_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    real = outputs.atomic_write_bytes

    def recording(path: Path, data: bytes) -> None:
        order.append(Path(path).name)
        real(path, data)

    monkeypatch.setattr(outputs, "atomic_write_bytes", recording)
    _render(tmp_path / "out")
    assert order[-1] == "meta.json" and order.count("meta.json") == 1


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
    files = write_render(
        tmp_path / "o", _images(2, 8, 8), ["a", "b"], meta, per_image=False, stem_names=["x", "y"], grid_labels=False
    )
    assert set(files) == {"grid.png"}
    assert "files" not in meta, "the caller's meta must not be modified"
    assert files["grid.png"]["height"] == 8 + 2 * 2

    files = write_render(tmp_path / "s", _images(2, 8, 8), ["a", "b"], {}, grid=False, stem_names=["x", "y"])
    assert set(files) == {"000_x.png", "001_y.png"}

    with pytest.raises(ValueError, match="labels"):
        write_render(tmp_path / "bad", _images(2, 8, 8), ["a"], {})

    def fail(src: object, dst: object) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OutputError, match="Permission denied"):
        write_render(tmp_path / "f", _images(1, 8, 8), ["a"], {})
    assert not (tmp_path / "f" / "meta.json").exists()
    assert _temp_files(tmp_path) == []


def test_write_render_accepts_torch_tensors(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    imgs = torch.rand(2, 8, 8, 3, dtype=torch.bfloat16, requires_grad=True)
    files = write_render(tmp_path, imgs, ["a", "b"], {"loss": torch.tensor(float("nan"))})
    assert "grid.png" in files
    assert json.loads((tmp_path / "meta.json").read_text())["loss"] is None


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
