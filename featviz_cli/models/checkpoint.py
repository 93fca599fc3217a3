"""A model's weights from local files: state dicts (any common layout) and TorchScript archives.

Every local file goes through ``load_checkpoint`` and every state dict into a module through
``apply_state_dict``, so checkpoint errors read the same whatever the source.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import ModelError
from ..usercode import one_line

# Keys under which training scripts commonly nest the weights in a checkpoint dict.
WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model")
# Prefixes added by nn.DataParallel / DistributedDataParallel and by torch.compile.
KEY_PREFIXES: tuple[str, ...] = ("module.", "_orig_mod.")
_TRUST_HINT = "set model.trust_checkpoint: true only if you trust this file (loading it runs code inside it)"


def random_weights(weights: str | None) -> bool:
    """True for the spec value that asks for random weights (``weights: none``)."""
    return weights is not None and weights.strip().lower() == "none"


def _listing(names: list[str], n: int = 5) -> str:
    """``a, b, c (+N more)`` for error messages."""
    shown = ", ".join(names[:n])
    return f"{shown} (+{len(names) - n} more)" if len(names) > n else shown


def load_checkpoint(path: str | Path, *, trust: bool) -> "dict[str, torch.Tensor] | torch.jit.ScriptModule":
    """Read a local weights file: a state dict (unwrapped, prefixes stripped) or a TorchScript module.

    Without ``trust`` only tensors and plain containers are unpickled (``weights_only=True``).
    """
    p = check_file(path)
    if is_torchscript(p):
        return load_torchscript(p)[0]
    try:
        obj = torch.load(p, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as e:
        # A refused class shows as "Unsupported global: GLOBAL pkg.Class"; random bytes fail otherwise.
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if not trust and refused:
            raise ModelError(
                f"model.checkpoint: {p} holds Python objects besides tensors ({refused.group(1)}) and was not "
                f"loaded; save model.state_dict() instead, or {_TRUST_HINT}."
            ) from None
        raise _corrupt(p, e) from None
    except OSError as e:  # e.g. no permission to read
        raise ModelError(
            f"model.checkpoint: {p} cannot be read ({one_line(e)}); check the file's permissions."
        ) from None
    except (ImportError, AttributeError) as e:  # trusted pickle naming a class that is not importable
        raise ModelError(
            f"model.checkpoint: {p} needs code that cannot be imported ({one_line(e)}); make the module that "
            "defined its classes importable, or save model.state_dict() instead."
        ) from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for damaged files
        raise _corrupt(p, e) from None
    return _state_dict_from(obj, p)


def check_file(path: str | Path) -> Path:
    """The path as a ``Path``; ``ModelError`` when it is missing or not a regular file."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise ModelError(f"model.checkpoint: {p} is a directory; give the path of the weights file inside it.")
    if not p.is_file():
        raise ModelError(
            f"model.checkpoint: {p}: no such file; check the path (relative paths start at {os.getcwd()})."
        )
    return p


def _corrupt(p: Path, exc: BaseException) -> ModelError:
    """The error for a file torch cannot parse."""
    return ModelError(
        f"model.checkpoint: {p} cannot be read; it is truncated, corrupt or not a PyTorch file "
        f"({one_line(exc, 120)}). Copy or download it again, or save it with torch.save(model.state_dict(), path)."
    )


def is_torchscript(p: Path) -> bool:
    """True for a ``torch.jit.save`` archive: a zip with ``constants.pkl`` or a ``code/`` folder."""
    try:
        if not zipfile.is_zipfile(p):
            return False
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def load_torchscript(p: Path) -> "tuple[torch.jit.ScriptModule, dict[str, Any] | None]":
    """Load a TorchScript file on the CPU; also its ``featviz_info.json`` extra file when present."""
    extra = {"featviz_info.json": ""}
    try:
        with warnings.catch_warnings():  # torch.jit.load is deprecated upstream but still the way to read these files
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(p), map_location="cpu", _extra_files=extra)
    except Exception as e:  # noqa: BLE001
        raise _corrupt(p, e) from None
    raw = extra["featviz_info.json"]
    if not raw:
        return module, None
    try:
        return module, json.loads(raw)
    except ValueError as e:
        raise ModelError(f"model.checkpoint: {p}: its featviz_info.json is not valid JSON ({one_line(e)}).") from None


def _state_dict_from(obj: Any, p: Path) -> dict[str, torch.Tensor]:
    """Unwrap ``{"state_dict": ...}``-style checkpoints and whole pickled modules; strip key prefixes."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, nn.Module):
                inner = inner.state_dict()
            if isinstance(inner, dict) and inner:
                obj = inner
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        found = _listing([str(k) for k in obj]) if isinstance(obj, dict) else type(obj).__name__
        raise ModelError(
            f"model.checkpoint: {p} does not hold a state dict (found: {found or 'nothing'}); "
            "save it with torch.save(model.state_dict(), path)."
        )
    return strip_prefixes(obj)


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove a ``module.``/``_orig_mod.`` prefix shared by every key (DataParallel, torch.compile)."""
    for prefix in KEY_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def apply_state_dict(module: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load ``state`` into ``module`` strictly; mismatches raise ``ModelError`` naming the keys and the file."""
    own = module.state_dict()
    shapes = [
        f"{k} {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if shapes:
        raise ModelError(
            f"model.checkpoint: {path} does not fit the model: shapes differ for {_listing(shapes)}; "
            "set model.kwargs (e.g. num_classes) to match the network the file was saved from."
        )
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise ModelError(f"model.checkpoint: {path} does not fit the model ({one_line(e)}).") from None
    problems = []
    if result.missing_keys:
        problems.append(f"missing keys {_listing(list(result.missing_keys))}")
    if result.unexpected_keys:
        problems.append(f"unexpected keys {_listing(list(result.unexpected_keys))}")
    if problems:
        raise ModelError(
            f"model.checkpoint: {path} does not fit the model: {'; '.join(problems)}. "
            "Check that model.name/model.python and model.kwargs build the network the file was saved from."
        )


def load_checkpoint_into(module: nn.Module, path: str | Path, *, trust: bool) -> None:
    """Read a state dict file and load it strictly into ``module`` (a TorchScript file is refused)."""
    state = load_checkpoint(path, trust=trust)
    if not isinstance(state, dict):
        raise ModelError(
            f"model.checkpoint: {path} is a TorchScript file, not a state dict; "
            "set model.name: torchscript (and no model.python) to use it as it is."
        )
    apply_state_dict(module, state, path)
