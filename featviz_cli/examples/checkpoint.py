"""The pass's checkpoint: what it must agree on (the fingerprint), where it lives, saving and loading it.

A checkpoint ``OUT/examples/checkpoint-<hash>.pt`` holds the rankings after the first
``done`` files of the folder, and a hash chain over those files' names, so a resumed pass
can check the folder did not change under it. The fingerprint and the file's format are a
contract with existing output directories: changing either stops them from resuming.
Its sha256 is recorded beside it (:mod:`.digest`) and checked before it is resumed.
"""
from __future__ import annotations

import hashlib
import io
import json
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import SpecError
from ..images import iter_images
from ..models import ModelInfo
from .digest import digest_problem, write_with_digest
from .layout import EXAMPLES_DIR
from .ranking import Ranking
from .stats import Stats

FORMAT = 1  # checkpoint format
CHAIN_START = "00" * 32


def chain_hash(previous: str, paths: Sequence[str]) -> str:
    """Extend a hash chain over file names: resuming checks that the folder's first N files are unchanged."""
    digest = bytes.fromhex(previous)
    for p in paths:
        digest = hashlib.sha256(digest + p.encode("utf-8", "surrogateescape")).digest()
    return digest.hex()


def pass_fingerprint(info: ModelInfo, identity: dict[str, Any], layers: list[str], k: int, bottom: bool,
                root: Path, mass: float) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed."""
    return {
        "format": FORMAT, "model": identity, "input_size": info.input_size, "mean": list(info.mean),
        "std": list(info.std), "value_range": list(info.value_range), "layers": list(layers), "k": k,
        "bottom": bottom, "images": str(Path(root).resolve()), "rf_mass": mass,
    }


def checkpoint_path(out_dir: Path, fingerprint: dict[str, Any]) -> Path:
    """``OUT/examples/checkpoint-<hash>.pt``: one per pass configuration."""
    key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return Path(out_dir) / EXAMPLES_DIR / f"checkpoint-{key}.pt"


class DamagedCheckpoint(SpecError):
    """A checkpoint that does not match its recorded sha256 or cannot be read (``problem`` says which)."""

    def __init__(self, path: Path, problem: str, message: str) -> None:
        self.path, self.problem = Path(path), problem
        super().__init__("dataset", f"{path}: {message}; delete it or rerun with --restart.")


@dataclass
class PassState:
    """Everything a checkpoint holds; replaced as a whole after each batch, so it is always consistent."""

    done: int
    chain: str
    seen: int
    unreadable: int
    unreadable_files: list[dict[str, str]]
    rankings: dict[str, tuple[Ranking, Ranking | None]]
    paths: dict[int, str]
    #: Per layer the activation statistics of every image so far; None where a checkpoint of an older
    #: featviz resumed (its images before the checkpoint were not counted).
    stats: dict[str, Stats | None] = dataclasses.field(default_factory=dict)


def save_checkpoint(path: Path, fingerprint: dict[str, Any], state: PassState,
                    shapes: dict[str, tuple[int, ...]]) -> None:
    """Write the pass's state to ``path`` atomically (a ``torch.load(weights_only=True)``-safe dict)."""
    buf = io.BytesIO()
    torch.save({
        "fingerprint": fingerprint, "done": state.done, "chain": state.chain, "seen": state.seen,
        "unreadable": state.unreadable, "unreadable_files": state.unreadable_files, "paths": state.paths,
        "layers": {name: {"shape": list(shapes[name]), "top": top.state(),
                          "bottom": bottom.state() if bottom is not None else None,
                          **({"stats": state.stats[name].state()} if state.stats.get(name) is not None else {})}
                   for name, (top, bottom) in state.rankings.items()},
    }, buf)
    write_with_digest(path, buf.getvalue())


def load_checkpoint(path: Path, fingerprint: dict[str, Any], root: Path,
                    shapes: dict[str, tuple[int, ...]]) -> PassState | None:
    """The saved state if ``path`` exists; DamagedCheckpoint if it does not match its recorded sha256 or
    cannot be read, SpecError if it is another pass's or the folder changed."""
    if not path.exists():
        return None
    problem = digest_problem(path)
    if problem:
        raise DamagedCheckpoint(path, problem, f"the checkpoint {problem}")
    try:
        data = torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged checkpoint is reported with the fix
        raise DamagedCheckpoint(path, f"cannot be read ({type(e).__name__})",
                                f"cannot read the checkpoint ({type(e).__name__})") from None
    if data.get("fingerprint") != fingerprint:
        raise SpecError("dataset", f"{path} belongs to another pass; delete it or rerun with --restart.")
    done = int(data["done"])
    first = []
    for i, rel in enumerate(iter_images(root)):
        if i >= done:
            break
        first.append(rel)
    if len(first) != done or chain_hash(CHAIN_START, first) != data["chain"]:
        raise SpecError("dataset.images", f"{root}: the folder's files changed since the checkpoint "
                        f"{path} was saved ({done} files processed); rerun with --restart to start over.")
    rankings, stats = {}, {}
    for name, layer in data["layers"].items():
        if tuple(layer["shape"]) != shapes[name]:
            raise SpecError("dataset", f"{path}: layer {name!r} had shape {layer['shape']}; rerun with --restart.")
        bottom = layer["bottom"]
        rankings[name] = (Ranking.from_state(layer["top"], True),
                          Ranking.from_state(bottom, False) if bottom is not None else None)
        stats[name] = Stats.from_state(layer["stats"]) if "stats" in layer else None
    return PassState(done, data["chain"], int(data["seen"]), int(data["unreadable"]),
                     list(data["unreadable_files"]), rankings, dict(data["paths"]), stats)
