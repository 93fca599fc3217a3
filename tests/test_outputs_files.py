"""Tests for featviz_cli.outputs.files: atomic writes (and writes that fail halfway), JSON, hashes,
file names, safe paths and the output directory."""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from featviz_cli.errors import OutputError, SpecError
from featviz_cli.outputs.files import (
    MAX_NAME_LENGTH,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    ensure_dir,
    json_text,
    output_dir,
    prepare_output_dir,
    record_problem,
    remove_file,
    remove_temps,
    safe_join,
    sanitize_filename,
    sha256_bytes,
    sha256_file,
    write_bytes_if_changed,
)
from outputs_helpers import fill_disk, temp_files

ROOT = Path(__file__).resolve().parents[1]
SAFE_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_content_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert temp_files(tmp_path) == []
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
    assert temp_files(tmp_path) == []


def test_atomic_write_that_fails_halfway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills after part of the data is on disk: no partial file, no temp, old content kept."""
    target = tmp_path / "grid.png"
    target.write_bytes(b"previous content")
    data = bytes(range(256)) * 4096  # 1 MiB
    seen: list[tuple[str, int]] = []  # (temp name, bytes on disk) when the disk filled
    fill_disk(monkeypatch, lambda size: 1000,
              on_fail=lambda: seen.extend((p.name, p.stat().st_size) for p in temp_files(tmp_path)))
    with pytest.raises(OutputError) as info:
        atomic_write_bytes(target, data)
    assert len(seen) == 1 and seen[0][0].startswith(".grid.png.") and seen[0][1] == 1000, seen
    message = str(info.value)
    assert str(target) in message and os.strerror(errno.ENOSPC) in message and "disk space" in message
    assert target.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]

    monkeypatch.undo()  # space again: the rerun completes
    atomic_write_bytes(target, data)
    assert target.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE and SIGXFSZ as on Linux")
def test_atomic_write_cut_short_by_the_kernel(tmp_path: Path) -> None:
    """A real short write: the kernel stops the file at RLIMIT_FSIZE (EFBIG) after 64 KiB of 1 MiB."""
    target = tmp_path / "big.bin"
    target.write_bytes(b"previous content")
    data = os.urandom(1 << 20)
    (tmp_path / "data").mkdir()
    source = tmp_path / "data" / "payload"
    source.write_bytes(data)
    code = (
        "import os, resource, signal, sys\n"
        "from pathlib import Path\n"
        "from featviz_cli.errors import OutputError\n"
        "from featviz_cli.outputs.files import atomic_write_bytes\n"
        "target, data = Path(sys.argv[1]), Path(sys.argv[2]).read_bytes()\n"
        "sizes = []\n"
        "real_unlink = os.unlink\n"
        "def unlink(p):\n"
        "    sizes.append(os.stat(p).st_size)\n"
        "    real_unlink(p)\n"
        "os.unlink = unlink\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "try:\n"
        "    atomic_write_bytes(target, data)\n"
        "except OutputError as err:\n"
        "    print(sizes, err)\n"
        "    sys.exit(0)\n"
        "sys.exit(5)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(target), str(source)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("[65536] ")  # the temp file held the first 64 KiB when it was removed
    assert str(target) in proc.stdout and "File too large" in proc.stdout
    assert target.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin", "data"]

    atomic_write_bytes(target, data)  # the rerun, without the limit
    assert target.read_bytes() == data
    assert temp_files(tmp_path) == []


def test_atomic_write_into_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="missing"):
        atomic_write_bytes(tmp_path / "missing" / "x.png", b"x")


def test_atomic_write_uses_umask_permissions(tmp_path: Path) -> None:
    target = tmp_path / "perm.txt"
    atomic_write_text(target, "x")
    reference = tmp_path / "ref.txt"
    reference.write_text("x")
    assert target.stat().st_mode == reference.stat().st_mode


def test_atomic_write_text_is_utf8_with_newlines_as_given(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "t.txt", "ü\r\nx\n")
    assert (tmp_path / "t.txt").read_bytes() == b"\xc3\xbc\r\nx\n"


def test_write_bytes_if_changed(tmp_path: Path) -> None:
    target = tmp_path / "index.html"
    assert write_bytes_if_changed(target, b"one") is True
    mtime = target.stat().st_mtime_ns
    os.utime(target, ns=(mtime - 10**9, mtime - 10**9))
    assert write_bytes_if_changed(target, b"one") is False
    assert target.stat().st_mtime_ns == mtime - 10**9, "unchanged bytes must not be rewritten"
    assert write_bytes_if_changed(target, b"two") is True
    assert target.read_bytes() == b"two"
    assert temp_files(tmp_path) == []


def test_remove_file(tmp_path: Path) -> None:
    target = tmp_path / "meta.json"
    target.write_text("{}")
    remove_file(target)
    assert not target.exists()
    remove_file(target)  # already gone: fine
    (tmp_path / "dir").mkdir()
    with pytest.raises(OutputError, match="cannot remove") as info:
        remove_file(tmp_path / "dir")
    assert str(tmp_path / "dir") in str(info.value)


def test_remove_temps_deletes_only_the_named_files_leftovers(tmp_path: Path) -> None:
    names = [".index.html.0123456789ab.tmp", ".top_00_crop.png.0123456789ab.tmp", ".examples.json.ab.tmp",
             ".index.html.0123456789ab", ".indexes.json.0123456789ab.tmp", "index.html", ".other.png.01.tmp"]
    for name in names:
        (tmp_path / name).write_text("x")
    remove_temps(tmp_path, ["index", "top", "examples"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[3:])
    remove_temps(tmp_path / "missing", ["index"])  # no folder: nothing to do
    remove_temps(tmp_path, [])
    assert len(list(tmp_path.iterdir())) == 4


# ---------------------------------------------------------------- JSON


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


def test_json_text_exact() -> None:
    """The exact text, written by hand: key order kept, keys made strings, tuples, sets and paths converted."""
    obj = {"b": (1, np.int64(2)), 3: {"é": Path("a/b")}, "s": {"y", "x"}, "f": np.float32(0.5), "n": None}
    expected = (
        '{\n  "b": [\n    1,\n    2\n  ],\n  "3": {\n    "é": "a/b"\n  },\n'
        '  "s": [\n    "x",\n    "y"\n  ],\n  "f": 0.5,\n  "n": null\n}\n'
    )
    assert json_text(obj) == expected


# ---------------------------------------------------------------- hashes


def test_sha256_against_known_digests(tmp_path: Path) -> None:
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # FIPS 180-2 test vectors
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_bytes(b"") == empty and sha256_bytes(b"abc") == abc
    (tmp_path / "abc").write_bytes(b"abc")
    assert sha256_file(tmp_path / "abc") == abc
    big = os.urandom(3 * (1 << 20) + 5)  # more than one read chunk
    (tmp_path / "big").write_bytes(big)
    assert sha256_file(tmp_path / "big") == hashlib.sha256(big).hexdigest()
    with pytest.raises(OutputError, match="cannot read"):
        sha256_file(tmp_path / "missing")


def test_a_file_is_checked_against_its_size_and_sha256(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"0123456789")
    rec = {"sha256": hashlib.sha256(b"0123456789").hexdigest(), "bytes": 10}
    assert record_problem(path, rec) == ""
    path.write_bytes(b"0123456780")
    assert record_problem(path, rec) == "does not match its recorded sha256"
    path.write_bytes(b"01234")
    assert record_problem(path, rec) == "has 5 bytes, 10 recorded"
    path.write_bytes(b"0123456789abc")
    assert record_problem(path, rec) == "has more than 10 bytes, 10 recorded"
    path.unlink()
    assert record_problem(path, rec) == "is missing"
    assert record_problem(path, None) == record_problem(path, {"bytes": "x"}) == "has no recorded size and sha256"
    (tmp_path / "dir").mkdir()
    assert record_problem(tmp_path / "dir", rec).startswith("cannot be read (")


# ---------------------------------------------------------------- file names

#: Tricky names and what sanitize_filename must make of them, worked out by hand. A suffix
#: ``-xxxxxxxx`` is the first 8 hex digits of the SHA-256 of the original (UTF-8, surrogates passed).
SANITIZED = [
    ("features.3/conv:0", "features.3_conv_0"),
    ("_blocks.10", "_blocks.10"),
    ("mixed4a", "mixed4a"),
    ("a  b//c", "a_b_c"),
    ("...hidden", "hidden"),
    ("unit.", "unit"),
    ("goldfish (1)", "goldfish_1"),
    ("__init__", "__init__"),
    ("a_", "a_"),  # a trailing underscore of the original is kept
    ("a_:", "a"),  # one that stands for an unsafe character is not
    ("a :_b", "a_b"),
    ("x/", "x"),
    ("layer[0].weight", "layer_0_.weight"),
    ("été", "_t"),
    ("conv_é", "conv"),
    ("../../etc/passwd", "_.._etc_passwd"),
    ("", "unnamed"),
    ("日本語", "unnamed-77710aed"),
    ("中文", "unnamed-72726d88"),
    ("...", "unnamed-ab5df625"),
    ("  ", "unnamed-6c179f21"),
    ("-", "unnamed-3973e022"),
    ("\udcff", "unnamed-8f1d0f9c"),  # a lone surrogate, as os.fsdecode makes of undecodable bytes
    ("x" * 100, "x" * 100),
    ("x" * 101, "x" * 91 + "-c675a2e6"),
    ("x" + "a." * 60, "x" + "a." * 44 + "a-8388f854"),  # the cut falls after a dot: dropped, 99 characters
    ("x" * 300 + "a", "x" * 91 + "-f5e724b7"),
    ("x" * 300 + "b", "x" * 91 + "-2cb994e1"),
]


@pytest.mark.parametrize(("raw", "expected"), SANITIZED)
def test_sanitize_filename_examples(raw: str, expected: str) -> None:
    assert sanitize_filename(raw) == expected


def test_sanitize_filename_same_in_other_processes() -> None:
    """The names do not depend on the process (hash seed): two fresh interpreters agree with the table."""
    code = (
        "import json, sys\n"
        "from featviz_cli.outputs.files import sanitize_filename\n"
        "print(json.dumps([sanitize_filename(s) for s in json.load(sys.stdin)]))\n"
    )
    raws = json.dumps([raw for raw, _ in SANITIZED])  # ASCII escapes carry the lone surrogate
    for seed in ["1", "2"]:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, input=raws,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == [expected for _, expected in SANITIZED]


def _random_names(count: int, seed: int = 0) -> list[str]:
    """Names made of the characters that go wrong: separators, dots, underscores, non-ASCII, controls."""
    rng = random.Random(seed)
    alphabet = list("aZ09._-_/\\: ()[]\x00\t\n") + ["é", "日", "\udcff", "\u202e", ".."]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 130))) for _ in range(count)]


@pytest.mark.parametrize("raw", ["../../etc/passwd", "", ".", "..", "/", "日本語", "é/ü", "x" * 500, "a\\b\x00c", "-"])
def test_sanitize_filename_always_safe(raw: str) -> None:
    name = sanitize_filename(raw)
    assert name and name not in {".", ".."}
    assert len(name) <= 100
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith(".")
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name)


def test_sanitize_filename_properties() -> None:
    """For 3000 random tricky names: safe characters only, at most 100, no dot at either end, idempotent."""
    for raw in _random_names(3000):
        name = sanitize_filename(raw)
        assert name and set(name) <= SAFE_CHARS, (raw, name)
        assert len(name) <= MAX_NAME_LENGTH, (raw, name)
        assert not name.startswith(".") and not name.endswith("."), (raw, name)
        assert sanitize_filename(name) == name, (raw, name)
        if set(raw) <= SAFE_CHARS and len(raw) <= MAX_NAME_LENGTH and raw.strip(".") == raw and raw.strip("._-"):
            assert name == raw, "a name that is already safe must be kept as it is"


def test_sanitize_filename_suffix_keeps_distinct_names_apart() -> None:
    """Distinct names that lose their difference (truncated, or no letters left) stay distinct by the hash."""
    long_names = [f"{'features.' * 12}{i}" for i in range(2000)]  # the same first 108 characters
    assert len({sanitize_filename(n) for n in long_names}) == len(long_names)
    assert all(len(sanitize_filename(n)) == 100 for n in long_names)
    rng = random.Random(1)
    symbols = sorted({"".join(rng.choices("._-/ :日", k=rng.randint(1, 12))) for _ in range(2000)})
    unnamed = [sanitize_filename(s) for s in symbols]
    assert all(n.startswith("unnamed-") for n in unnamed)
    assert len(set(unnamed)) == len(symbols)


def test_sanitize_filename_specific_cases() -> None:
    assert sanitize_filename("../../etc/passwd") == "_.._etc_passwd"
    assert sanitize_filename("") == "unnamed"
    assert sanitize_filename("日本語").startswith("unnamed-")
    assert sanitize_filename("日本語") != sanitize_filename("中文")
    assert sanitize_filename("conv_é") == "conv"
    long_a, long_b = "x" * 300 + "a", "x" * 300 + "b"
    assert len(sanitize_filename(long_a)) == 100
    assert sanitize_filename(long_a) != sanitize_filename(long_b)
    assert sanitize_filename(long_a) == "x" * 91 + "-f5e724b7"


# ---------------------------------------------------------------- paths


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


def test_ensure_dir(tmp_path: Path) -> None:
    made = ensure_dir(tmp_path, "a/b")
    assert made == (tmp_path / "a" / "b").resolve() and made.is_dir()
    assert ensure_dir(tmp_path, "a/b") == made
    with pytest.raises(OutputError):
        ensure_dir(tmp_path, "../escape")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot create directory"):
        ensure_dir(tmp_path, "file/sub")


# ---------------------------------------------------------------- output directory


def test_output_dir_removes_what_it_created_when_the_command_fails_before_writing(tmp_path: Path) -> None:
    with pytest.raises(SpecError):
        with output_dir(tmp_path / "a" / "b" / "out") as out:
            assert out.is_dir() and out == (tmp_path / "a" / "b" / "out").resolve()
            (out / "sub").mkdir()  # directories alone are nothing written
            raise SpecError("--x", "bad")
    assert sorted(tmp_path.iterdir()) == []


def test_output_dir_keeps_what_was_written_and_what_was_there(tmp_path: Path) -> None:
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


def test_output_dir_removes_scratch_files_with_the_directory_but_counts_other_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError):
        with output_dir(tmp_path / "run", scratch=[".lock"]) as out:
            (out / ".lock").write_bytes(b"")
            raise SpecError("x", "bad")
    assert sorted(tmp_path.iterdir()) == []  # a lock alone is nothing written
    with pytest.raises(SpecError):
        with output_dir(tmp_path / "run2", scratch=[".lock"]) as out:
            (out / ".lock").write_bytes(b"")
            (out / "sweep.json").write_text("{}")
            raise SpecError("x", "bad")
    assert sorted(p.name for p in (tmp_path / "run2").iterdir()) == [".lock", "sweep.json"]


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
    """The write test's failure path, independent of running as root: the OS refuses its test file."""
    real_open = os.open

    def refuse(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        if "featviz-write-test" in os.fspath(path):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(OutputError, match="writable") as info:
        prepare_output_dir(tmp_path / "out")
    assert str(tmp_path / "out") in str(info.value)
    assert "Permission denied" in str(info.value)
