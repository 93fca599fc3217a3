"""A file's sha256 in a digest file beside it (featviz_cli/examples/digest.py): the format sha256sum reads,
the old and the new state accepted while the file is replaced, and a damaged file found."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from featviz_cli.examples import digest
from featviz_cli.examples.digest import accepted, digest_path, digest_problem, record_digest, write_with_digest


def test_the_digest_file_is_what_sha256sum_writes(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint-abc.pt"
    write_with_digest(path, b"state one")
    assert path.read_bytes() == b"state one" and digest_path(path) == tmp_path / "checkpoint-abc.sha256"
    assert digest_path(path).read_text() == f"{hashlib.sha256(b'state one').hexdigest()}  checkpoint-abc.pt\n"
    if shutil.which("sha256sum"):
        check = subprocess.run(["sha256sum", "--check", digest_path(path).name], cwd=tmp_path,
                               capture_output=True, text=True)
        assert check.returncode == 0 and check.stdout.strip() == "checkpoint-abc.pt: OK"
    assert digest_problem(path) == "" and not record_digest(path)


def test_a_kill_between_the_two_writes_leaves_a_pair_that_agrees(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.pt"
    write_with_digest(path, b"old")
    seen: list[set[str] | None] = []
    original = digest.atomic_write_bytes

    def replace_then_look(target: Path, data: bytes) -> None:
        seen.append(accepted(path))  # before the file is replaced
        assert digest_problem(path) == ""
        original(target, data)
        seen.append(accepted(path))  # after it, before the digest file is rewritten
        assert digest_problem(path) == ""

    monkeypatch.setattr(digest, "atomic_write_bytes", replace_then_look)
    write_with_digest(path, b"new")
    both = {hashlib.sha256(b"old").hexdigest(), hashlib.sha256(b"new").hexdigest()}
    assert seen == [both, both]
    assert accepted(path) == {hashlib.sha256(b"new").hexdigest()}  # and then only the new state


def test_a_damaged_file_or_digest_is_found(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    write_with_digest(path, b"0123456789")
    path.write_bytes(b"0123456788")
    assert digest_problem(path) == "does not match its recorded sha256 (c.sha256)"
    path.write_bytes(b"01234")
    assert digest_problem(path) == "does not match its recorded sha256 (c.sha256)"
    write_with_digest(path, b"0123456789")
    good = digest_path(path).read_text()
    digest_path(path).write_text(good.replace("c.pt", "d.pt"))  # another file's digest
    assert accepted(path) is None and digest_problem(path) == ""  # unreadable: nothing to check against
    digest_path(path).write_text(good[:30])
    assert accepted(path) is None
    assert record_digest(path) and digest_path(path).read_text() == good
    digest_path(path).unlink()  # a file an earlier featviz wrote has none
    assert digest_problem(path) == "" and record_digest(path) and digest_path(path).read_text() == good
    assert not record_digest(tmp_path / "none.pt") and not digest_path(tmp_path / "none.pt").exists()
