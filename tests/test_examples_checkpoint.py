"""The pass's checkpoint (featviz_cli/examples/checkpoint.py): the fingerprint, the file name and the format
are those of earlier releases, so existing output directories still resume."""
from __future__ import annotations

import hashlib
import io
import math
import shutil
from pathlib import Path

import pytest
import torch

from featviz_cli.errors import SpecError
from featviz_cli.examples.checkpoint import CHAIN_START, DamagedCheckpoint, chain_hash, checkpoint_path, pass_fingerprint
from featviz_cli.examples.digest import digest_path
from featviz_cli.examples.pass_ import ExamplesResult, collect
from featviz_cli.examples.ranking import EMPTY

from examples_fixtures import RED_INFO, RedNet, red_folder

#: The fingerprint of a pass on the red detector, as every release so far has written it.
RED_FINGERPRINT = {
    "format": 1, "model": {"name": "rednet"}, "input_size": 32, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
    "value_range": [0.0, 1.0], "layers": ["blur"], "k": 4, "bottom": True, "images": "/data/photos", "rf_mass": 0.9,
}


def test_fingerprint_and_checkpoint_name_are_those_of_earlier_releases() -> None:
    fp = pass_fingerprint(RED_INFO, {"name": "rednet"}, ["blur"], 4, True, Path("/data/photos"), 0.9)
    assert fp == RED_FINGERPRINT
    # recorded from the single-module examples.py, before the package split
    assert checkpoint_path(Path("out"), fp) == Path("out/examples/checkpoint-5fd1f5e9a789.pt")


def test_chain_hash_is_sha256_chained_over_the_names() -> None:
    digest = bytes(32)
    for name in ("a.png", "sub/b.jpg"):
        digest = hashlib.sha256(digest + name.encode()).digest()
    assert CHAIN_START == "00" * 32
    assert chain_hash(CHAIN_START, ["a.png", "sub/b.jpg"]) == digest.hex()
    assert chain_hash(chain_hash(CHAIN_START, ["a.png"]), ["sub/b.jpg"]) == digest.hex()
    assert digest.hex() == "5291aacb755494ba763a014f9d991f2a99dd6eb1c1e1a326060502b28665ad46"


def _old_format_checkpoint(first: ExamplesResult, fingerprint: dict, names: list[str]) -> dict:
    """A checkpoint dict written field by field as earlier releases did (format 1)."""
    digest = bytes(32)
    for name in names:
        digest = hashlib.sha256(digest + name.encode()).digest()
    lx = first.layers["blur"]
    return {
        "fingerprint": fingerprint, "done": len(names), "chain": digest.hex(), "seen": first.images_seen,
        "unreadable": 0, "unreadable_files": [], "paths": dict(first.paths),
        "layers": {"blur": {"shape": [2, 16, 16],
                            "top": {"values": lx.top.values, "index": lx.top.index, "pos": lx.top.pos},
                            "bottom": {"values": lx.bottom.values, "index": lx.bottom.index, "pos": lx.bottom.pos}}},
    }



def test_a_checkpoint_in_the_old_format_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    root = tmp_path / "images"
    red_folder(root)
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))[:6]
    assert names[0] == "img_00.png" and names[-1] == "img_05.png"
    (tmp_path / "first").mkdir()
    for name in names:  # the first six files of the folder, alone: the state after six images
        shutil.copy(root / name, tmp_path / "first" / name)
    first = collect(RedNet(), RED_INFO, ["blur"], tmp_path / "first", k=3, bottom=True, batch_size=4, workers=0)
    fingerprint = {**RED_FINGERPRINT, "k": 3, "images": str(root.resolve())}
    ckpt = tmp_path / "old.pt"
    torch.save(_old_format_checkpoint(first, fingerprint, names), ckpt)
    messages: list[str] = []
    resumed = collect(RedNet(), RED_INFO, ["blur"], root, k=3, bottom=True, batch_size=4, workers=0,
                      checkpoint=ckpt, notify=messages.append)
    assert resumed.resumed_from == 6 and "6 of 12" in messages[0]
    assert "older featviz" in messages[1] and resumed.layers["blur"].stats is None  # its first images were not counted
    full = collect(RedNet(), RED_INFO, ["blur"], root, k=3, bottom=True, batch_size=5, workers=0)
    for a, b in ((full.layers["blur"].top, resumed.layers["blur"].top),
                 (full.layers["blur"].bottom, resumed.layers["blur"].bottom)):
        assert torch.equal(a.index, b.index) and torch.equal(a.pos, b.pos) and torch.equal(a.values, b.values)
    assert resumed.paths == full.paths and resumed.images_seen == 12
    saved = torch.load(ckpt, weights_only=True)  # and the pass saves the same format back
    assert set(saved) == {"fingerprint", "done", "chain", "seen", "unreadable", "unreadable_files", "paths", "layers"}
    assert saved["fingerprint"] == fingerprint and saved["done"] == 12
    layer = saved["layers"]["blur"]
    assert set(layer) == {"shape", "top", "bottom"} and layer["shape"] == [2, 16, 16]  # no statistics: none to save
    assert set(layer["top"]) == set(layer["bottom"]) == {"values", "index", "pos"}


def test_an_empty_slot_and_a_fresh_state_use_the_old_sentinels(tmp_path: Path) -> None:
    red_folder(tmp_path / "images")
    ckpt = tmp_path / "c.pt"
    collect(RedNet(), RED_INFO, ["blur"], tmp_path / "images", k=20, batch_size=4, workers=0, checkpoint=ckpt)
    saved = torch.load(ckpt, weights_only=True)
    top = saved["layers"]["blur"]["top"]
    assert EMPTY == 2**62 and (top["index"][:, 12:] == EMPTY).all() and (top["values"][:, 12:] == -math.inf).all()
    assert saved["layers"]["blur"]["bottom"] is None


def test_a_damaged_checkpoint_is_an_input_error_with_the_fix(tmp_path: Path) -> None:
    red_folder(tmp_path / "images")
    ckpt = tmp_path / "c.pt"
    ckpt.write_bytes(b"not a checkpoint")  # no digest file, as an earlier featviz left it
    with pytest.raises(SpecError, match="cannot read the checkpoint.*--restart") as err:
        collect(RedNet(), RED_INFO, ["blur"], tmp_path / "images", k=2, workers=0, checkpoint=ckpt)
    assert isinstance(err.value, DamagedCheckpoint)  # which run_examples deletes and runs the pass again
    assert err.value.path == ckpt and err.value.problem == "cannot be read (UnpicklingError)"


def test_a_checkpoint_changed_anywhere_is_found_before_it_is_resumed(tmp_path: Path) -> None:
    """torch.load reads most changed bytes of a checkpoint without complaint (a different ranking, or an
    index that is no image); the recorded sha256 finds every one."""
    red_folder(tmp_path / "images")
    ckpt = tmp_path / "c.pt"
    collect(RedNet(), RED_INFO, ["blur"], tmp_path / "images", k=3, bottom=True, batch_size=4, workers=0,
            checkpoint=ckpt)
    assert digest_path(ckpt).read_text() == f"{hashlib.sha256(ckpt.read_bytes()).hexdigest()}  c.pt\n"
    data = ckpt.read_bytes()
    silent = 0
    for pos in range(0, len(data), 41):
        damaged = bytearray(data)
        damaged[pos] ^= 0x10
        ckpt.write_bytes(bytes(damaged))
        with pytest.raises(DamagedCheckpoint, match="does not match its recorded sha256.*--restart") as err:
            collect(RedNet(), RED_INFO, ["blur"], tmp_path / "images", k=3, bottom=True, workers=0, checkpoint=ckpt)
        assert err.value.path == ckpt and err.value.problem == "does not match its recorded sha256 (c.sha256)"
        try:
            torch.load(io.BytesIO(bytes(damaged)), weights_only=True)
            silent += 1
        except Exception:  # noqa: BLE001 - what torch.load notices by itself
            pass
    assert silent > 10  # the digest is needed: without it many of these would have been resumed
