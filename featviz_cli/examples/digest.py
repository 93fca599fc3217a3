"""A file's sha256 in a digest file beside it (``name.sha256``, as ``sha256sum`` writes it): the checkpoint's.

torch.load reads most damaged bytes of a checkpoint without complaint (a changed ranking,
or an index that is no image), so the pass records the digest of each checkpoint it saves
and checks it before resuming. While a file is replaced the digest file accepts the old and
the new state, so a kill between the two writes leaves a pair that still agrees.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..outputs import atomic_write_bytes, sha256_bytes, sha256_file, write_bytes_if_changed

_LINE = re.compile(r"([0-9a-f]{64})  (.+)")


def digest_path(path: Path) -> Path:
    """The digest file of ``path``: the same name with the suffix ``.sha256``."""
    return Path(path).with_suffix(".sha256")


def accepted(path: Path) -> set[str] | None:
    """The sha256s the digest file accepts for ``path``; None when there is none or it cannot be read."""
    try:
        lines = digest_path(path).read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    found = set()
    for line in lines:
        m = _LINE.fullmatch(line)
        if m is None or m.group(2) != Path(path).name:
            return None
        found.add(m.group(1))
    return found or None


def _record(path: Path, digests: list[str]) -> None:
    """Make the digest file accept exactly ``digests`` (left alone if it already says so)."""
    text = "".join(f"{d}  {Path(path).name}\n" for d in dict.fromkeys(digests))
    write_bytes_if_changed(digest_path(path), text.encode("ascii"))


def write_with_digest(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and record its sha256 (the old state accepted meanwhile)."""
    path = Path(path)
    new = sha256_bytes(data)
    _record(path, [sha256_file(path), new] if path.exists() else [new])
    atomic_write_bytes(path, data)
    _record(path, [new])


def digest_problem(path: Path) -> str:
    """'' if ``path`` matches its digest file or has none (an earlier featviz wrote it), else what is wrong."""
    recorded = accepted(path)
    if recorded is None or sha256_file(path) in recorded:
        return ""
    return f"does not match its recorded sha256 ({digest_path(path).name})"


def record_digest(path: Path) -> bool:
    """Write the digest file of an existing ``path`` that has no readable one; True if written."""
    if not Path(path).exists() or accepted(path) is not None:
        return False
    _record(Path(path), [sha256_file(path)])
    return True
