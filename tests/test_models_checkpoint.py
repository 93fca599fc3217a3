"""Local weights files: state-dict layouts, prefixes, strict loading, damaged files, trust."""
from __future__ import annotations

import random
import sys
import uuid
from pathlib import Path
from typing import Callable

import pytest
import torch
from models_support import (  # noqa: F401 - fixtures
    assert_ready,
    model_error,
    no_downloads,
    same_state,
    spec,
    tiny,
    tiny_state,
)

from featviz_cli.models import checkpoint
from featviz_cli.models._registry import create_model

torch.set_num_threads(2)


class Opaque:
    """A class a weights-only load refuses to unpickle."""

    def __init__(self) -> None:
        self.note = "training state"


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {f"module.{k}": v for k, v in s.items()},
        lambda s: {"state_dict": s, "epoch": 3},
        lambda s: {"model": {f"module.{k}": v for k, v in s.items()}, "optimizer": {}},
        lambda s: {"model_state_dict": s},
    ],
    ids=["raw", "dataparallel", "state_dict", "model+module", "model_state_dict"],
)
def test_checkpoint_layouts(wrap: Callable, tiny: str, tmp_path: Path) -> None:
    state = tiny_state()
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(state), path)
    module, info = create_model(spec(python=f"{tiny}:build", checkpoint=str(path)))
    assert same_state(module, state)
    assert_ready(module)
    assert info.weights == str(path)


def test_prefixes_of_data_parallel_and_torch_compile_are_stripped() -> None:
    t = torch.zeros(1)
    assert checkpoint.strip_prefixes({"module.a": t, "module.b.c": t}) == {"a": t, "b.c": t}
    assert checkpoint.strip_prefixes({"_orig_mod.a": t}) == {"a": t}
    assert checkpoint.strip_prefixes({"module._orig_mod.a": t}) == {"a": t}
    assert checkpoint.strip_prefixes({"module.a": t, "b": t}) == {"module.a": t, "b": t}  # not shared: kept


def test_random_weights_reads_none_only() -> None:
    assert [checkpoint.random_weights(w) for w in ("none", " None ", "NONE", None, "DEFAULT", "")] == [
        True, True, True, False, False, False]


def test_checkpoint_key_mismatch_lists_keys(tiny: str, tmp_path: Path) -> None:
    state = tiny_state()
    del state["fc.bias"]
    state["head.weight"] = torch.zeros(1)
    path = tmp_path / "ckpt.pt"
    torch.save(state, path)
    msg = model_error(lambda: create_model(spec(python=f"{tiny}:build", checkpoint=str(path))))
    assert str(path) in msg and "missing keys fc.bias" in msg and "unexpected keys head.weight" in msg
    torch.save({f"x.{k}": v for k, v in tiny_state().items()}, path)
    msg = model_error(lambda: create_model(spec(python=f"{tiny}:build", checkpoint=str(path))))
    assert "(+4 more)" in msg  # 9 keys, 5 shown


def test_checkpoint_shape_mismatch_suggests_kwargs(tiny: str, tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save(tiny_state(num_classes=3), path)
    msg = model_error(lambda: create_model(spec(python=f"{tiny}:build", checkpoint=str(path),
                                                kwargs={"num_classes": 5})))
    assert "fc.weight (3, 4) vs model (5, 4)" in msg and "num_classes" in msg


def _write_corrupt(kind: str, tmp_path: Path) -> Path:
    """A damaged or missing weights file of the given kind."""
    good = tmp_path / "good.pt"
    torch.save(tiny_state(), good)
    path = tmp_path / f"{kind}.pt"
    if kind == "random":
        path.write_bytes(random.Random(0).randbytes(4096))
    elif kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated_legacy":
        torch.save(tiny_state(), good, _use_new_zipfile_serialization=False)
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", ["random", "truncated", "truncated_legacy", "empty", "directory", "missing"])
def test_damaged_or_missing_file_names_the_file(kind: str, tiny: str, tmp_path: Path) -> None:
    path = _write_corrupt(kind, tmp_path)
    msg = model_error(lambda: create_model(spec(python=f"{tiny}:build", checkpoint=str(path))))
    assert str(path) in msg
    expected = {"directory": "is a directory", "missing": "no such file"}.get(kind, "truncated, corrupt")
    assert expected in msg


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    msg = model_error(lambda: checkpoint.load_checkpoint(path, trust=False))
    assert "does not hold a state dict" in msg and "torch.save(model.state_dict()" in msg


def test_pickle_with_custom_class_needs_trust(tiny: str, tmp_path: Path) -> None:
    state = tiny_state()
    path = tmp_path / "full.pt"
    torch.save({"state_dict": state, "extra": Opaque()}, path)
    msg = model_error(lambda: create_model(spec(python=f"{tiny}:build", checkpoint=str(path))))
    assert str(path) in msg and "Opaque" in msg and "model.trust_checkpoint: true" in msg
    module, _ = create_model(spec(python=f"{tiny}:build", checkpoint=str(path), trust_checkpoint=True))
    assert same_state(module, state)


def test_trusted_pickle_with_missing_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"fvz_gone_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("class Gone:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    gone = __import__(name).Gone
    path = tmp_path / "gone.pt"
    torch.save({"state_dict": tiny_state(), "x": gone()}, path)
    sys.modules.pop(name)
    (tmp_path / f"{name}.py").unlink()
    msg = model_error(lambda: checkpoint.load_checkpoint(path, trust=True))
    assert "cannot be imported" in msg and str(path) in msg
