"""Files that are always complete: atomic writes, JSON text, hashes and safe paths.

Every write goes to a temp file in the same directory, is fsynced and then renamed
over the target (``os.replace``), so a file that exists is always complete and an
old file survives a failed write. :func:`safe_join` keeps every path inside its
output directory; :func:`sanitize_filename` turns layer and unit names into safe
file-name components.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import secrets
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from ..errors import OutputError

MAX_NAME_LENGTH = 100
_WRITE_FIX = "check that the directory is writable and that there is disk space"
_UNSAFE_CHARS = re.compile(r"_*[^A-Za-z0-9._-]+_*")  # with the underscores beside it

# ---------------------------------------------------------------- atomic writes


def _write_error(path: Path, err: BaseException, action: str = "cannot write", fix: str = _WRITE_FIX) -> OutputError:
    """An OutputError naming ``path``, the OS reason and the fix, on one line."""
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return OutputError(f"{action} {path}: {reason}; {fix}")


def _fsync_dir(directory: Path) -> None:
    """fsync a directory so a rename in it is durable; a no-op where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_temp(directory: Path, name: str) -> tuple[int, Path]:
    """Create a new hidden ``.<name>.<random>.tmp`` file in ``directory``; return (fd, path).

    ``os.open`` with mode 0o666 lets the umask decide the final permissions,
    as an ordinary ``open()`` would.
    """
    while True:
        tmp = directory / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file, fsync, ``os.replace``, fsync dir.

    Raises OutputError naming the path on any OS failure; the temp file is removed
    and an existing file at ``path`` is left untouched.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        fd, tmp = _create_temp(path.parent, path.name)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise _write_error(path, err) from err
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (newlines are written as given)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_bytes_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` atomically unless ``path`` already holds exactly these bytes; True if written."""
    try:
        if Path(path).read_bytes() == data:
            return False
    except OSError:
        pass
    atomic_write_bytes(path, data)
    return True


def remove_file(path: Path) -> None:
    """Delete the file at ``path`` if there is one; OutputError naming it if it cannot be removed."""
    try:
        Path(path).unlink()
    except FileNotFoundError:
        pass
    except OSError as err:
        raise _write_error(Path(path), err, "cannot remove") from err


def remove_temps(directory: Path, stems: Iterable[str]) -> None:
    """Delete leftover ``.<stem>.*.tmp`` and ``.<stem>_*.tmp`` files (from writes killed midway) of the
    given file stems in ``directory``, listing it once."""
    wanted = tuple(f".{s}{sep}" for s in stems for sep in "._")
    if not wanted:
        return
    try:
        entries = [e.name for e in os.scandir(directory)]
    except OSError:
        return
    for name in entries:
        if name.endswith(".tmp") and name.startswith(wanted):
            with contextlib.suppress(OSError):
                os.unlink(Path(directory) / name)


# ---------------------------------------------------------------- JSON


def _jsonable(obj: Any) -> Any:
    """A JSON-ready copy of ``obj``: NaN/inf become None; numpy/torch values, tuples, paths converted."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {_json_key(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return [_jsonable(v) for v in sorted(obj, key=repr)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "detach"):
        obj = obj.detach().cpu()
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return _jsonable(obj.tolist())
    raise TypeError(f"cannot write a {type(obj).__name__} to JSON: {obj!r}")


def _json_key(key: Any) -> Any:
    """A dict key JSON accepts: str, int, float, bool or None are kept; others become str."""
    if key is None or isinstance(key, (str, int, float, bool)):
        return key
    return str(key)


def json_text(obj: Any) -> str:
    """Deterministic JSON text: indent 2, non-ASCII kept, NaN/inf as null, trailing newline."""
    return json.dumps(_jsonable(obj), ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON (see :func:`json_text`) to ``path`` atomically."""
    atomic_write_text(path, json_text(obj))


# ---------------------------------------------------------------- hashes


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of the file at ``path``; OutputError if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as err:
        raise _write_error(Path(path), err, "cannot read") from err
    return digest.hexdigest()


def record_problem(path: Path, record: Any) -> str:
    """What is wrong with a file against its ``{"bytes": n, "sha256": hex}`` record ('' if nothing): no
    usable record, missing, unreadable, another size or another sha256 (reads at most n + 1 bytes)."""
    try:
        size, digest = int(record["bytes"]), str(record["sha256"])
    except (KeyError, TypeError, ValueError):
        return "has no recorded size and sha256"
    try:
        with open(path, "rb") as f:
            data = f.read(size + 1)
    except FileNotFoundError:
        return "is missing"
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if len(data) != size:
        return f"has {f'more than {size}' if len(data) > size else len(data)} bytes, {size} recorded"
    if hashlib.sha256(data).hexdigest() != digest:
        return "does not match its recorded sha256"
    return ""


# ---------------------------------------------------------------- paths


def _short_hash(text: str) -> str:
    """First 8 hex digits of the SHA-256 of ``text``."""
    return sha256_bytes(text.encode("utf-8", "surrogatepass"))[:8]


def sanitize_filename(text: str) -> str:
    """A safe file-name component from a layer/unit name.

    Runs of characters outside ``[A-Za-z0-9._-]`` (with any ``_`` next to them)
    become one ``_``; other underscores are kept as they are; leading and
    trailing dots (and underscores that stand for trailing unsafe characters)
    are removed. Never empty, ``.`` or ``..``, at most 100 characters; a short
    hash of the original is appended when it is truncated or has no letters or
    digits left (``"features.3/conv:0"`` -> ``"features.3_conv_0"``).
    """
    name = _UNSAFE_CHARS.sub("_", text)
    if not text.endswith("_"):  # "goldfish (1)" -> "goldfish_1", not "goldfish_1_"
        name = name.rstrip("_")
    name = name.strip(".")
    if not re.search(r"[A-Za-z0-9]", name):
        return f"unnamed-{_short_hash(text)}" if text else "unnamed"
    if len(name) > MAX_NAME_LENGTH:
        suffix = f"-{_short_hash(text)}"
        name = name[: MAX_NAME_LENGTH - len(suffix)].rstrip(".") + suffix
    return name


def safe_join(root: Path, name: str) -> Path:
    """``root / name`` resolved, or OutputError if it is not strictly inside ``root``.

    ``name`` may contain ``/`` for sub-directories; absolute names, ``..``
    escapes and symlinks pointing outside ``root`` are refused.
    """
    try:
        base = Path(root).resolve()
        target = (base / name).resolve()
    except (OSError, ValueError) as err:
        raise OutputError(f"invalid output file name {name!r} in {root}: {err}; use a plain relative name") from err
    if target == base or base not in target.parents:
        raise OutputError(
            f"refusing to write {name!r}: it resolves to {target}, outside the output directory {base}; "
            "use a relative name without '..'"
        )
    return target


def prepare_output_dir(path: Path) -> Path:
    """Create the output directory (with parents) and check it is writable; return it resolved.

    OutputError naming the path and the fix if it is a file, cannot be created,
    or a test file cannot be created in it.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"output directory {path} exists and is not a directory; choose another output.dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(
            path, err, "cannot create output directory", "check that its parents are writable directories, not files"
        ) from err
    try:
        fd, tmp = _create_temp(path, "featviz-write-test")
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise _write_error(path, err, "cannot write to output directory") from err
    return path.resolve()


@contextlib.contextmanager
def output_dir(path: str | Path, *, scratch: Iterable[str] = ()) -> Iterator[Path]:
    """``prepare_output_dir(path)`` for one command: if the command fails before it has written a file
    there, the directories it created are removed again, so that an error leaves nothing behind.

    ``scratch``: names of files (a lock) that do not count as written; they go with the directory.
    A command that failed after writing a file (a checkpoint to resume from) keeps everything.
    """
    target = Path(path).absolute()
    created = next((p for p in [*reversed(target.parents), target] if not p.exists()), None)
    resolved = prepare_output_dir(target)
    try:
        yield resolved
    except BaseException:
        if created is not None:
            _remove_if_empty(created, frozenset(scratch))
        raise


def _remove_if_empty(top: Path, scratch: frozenset[str]) -> None:
    """Remove ``top`` and the directories below it if none of them holds a file other than ``scratch``."""
    walk = list(os.walk(top, topdown=False))
    if any(set(files) - scratch for _, _, files in walk):
        return
    try:
        for folder, _, files in walk:
            for name in files:
                os.unlink(os.path.join(folder, name))
            os.rmdir(folder)
    except OSError:
        return


def ensure_dir(out_dir: Path, relative: str) -> Path:
    """Create ``out_dir/relative`` with its parents (inside ``out_dir``); OutputError if impossible."""
    path = safe_join(out_dir, relative)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(path, err, "cannot create directory") from err
    return path
