"""Dictionaries of directions: N x C matrix files (one direction per row), read, checked and written.

A dictionary is an ``.npy``, ``.pt``/``.pth`` or ``.safetensors`` file holding one 2-D array:
row ``i`` is direction ``i`` in a layer's activation space (sparse-autoencoder decoder rows,
NMF factors, probe weights, atlas cells). A file holding several tensors (a state dict, a
safetensors file with ``W_enc`` and ``W_dec``) names the one to use with ``vector_key``.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import SpecError
from ..outputs import atomic_write_bytes

SUFFIXES = (".npy", ".pt", ".pth", ".safetensors")
_SHOWN_ROWS = 5  # bad rows named in an error


def read_array(path: str | Path, *, key: str | None = None, field: str = "objective.vector_file") -> torch.Tensor:
    """The float32 tensor in ``path`` (``key`` picks one of several); ``SpecError`` naming ``field`` otherwise.

    Never runs code from the file: numpy without pickles, torch with ``weights_only``.
    """
    p = Path(path)
    if not p.is_file():
        raise SpecError(field, f"{path}: no such file.")
    if p.suffix.lower() not in SUFFIXES:
        raise SpecError(field, f"{path}: unknown kind of file; save the matrix as {', '.join(SUFFIXES)}.")
    try:
        if p.suffix.lower() == ".npy":
            data: Any = torch.from_numpy(np.load(p, allow_pickle=False))
        elif p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(str(p))
        else:
            data = torch.load(p, map_location="cpu", weights_only=True)
    except ImportError:
        raise SpecError(field, f"{path}: reading .safetensors needs the safetensors package "
                        "(pip install 'featviz[dictionary]').") from None
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad input file
        raise SpecError(field, f"{path}: cannot read a matrix ({type(e).__name__}: {e}); save it with numpy.save, "
                        "torch.save or safetensors.") from None
    return _pick(data, key, str(path), field).float()


def _pick(data: Any, key: str | None, path: str, field: str) -> torch.Tensor:
    """The tensor of a file's content: the content itself, or the entry ``key`` of a dict of tensors."""
    key_field = field.rsplit(".", 1)[0] + ".vector_key" if "." in field else "vector_key"
    if isinstance(data, torch.Tensor):
        if key is not None:
            raise SpecError(key_field, f"{path} holds one tensor, not named ones; remove vector_key.")
        return data
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise SpecError(field, f"{path}: holds no tensor; save one 2-D array, or a dict of tensors.")
    if key is not None:
        if key not in data:
            raise SpecError(key_field, f"{path} has no tensor {key!r}; it has: {', '.join(map(repr, sorted(data)))}.")
        return data[key]
    matrices = [k for k, v in data.items() if v.dim() == 2]
    if len(matrices) != 1:
        raise SpecError(key_field, f"{path} holds several tensors ({', '.join(map(repr, sorted(data)))}); "
                        "name the one to use with vector_key.")
    return data[matrices[0]]


def load_dictionary(path: str | Path, *, key: str | None = None, field: str = "objective.vector_file") -> torch.Tensor:
    """The N x C matrix in ``path``, checked to be 2-D with finite, non-zero rows."""
    m = read_array(path, key=key, field=field)
    if m.dim() != 2:
        raise SpecError(field, f"{path}: holds an array of shape {tuple(m.shape)}; a dictionary is an N x C matrix "
                        "(one direction per row); for one direction drop 'units'.")
    if m.shape[0] == 0 or m.shape[1] == 0:
        raise SpecError(field, f"{path}: the matrix {tuple(m.shape)} is empty.")
    bad = (~torch.isfinite(m).all(dim=1)).nonzero().flatten().tolist()
    if bad:
        raise SpecError(field, f"{path}: row(s) {_rows(bad)} hold NaN or infinite values; fix or drop them.")
    zero = (m.abs().sum(dim=1) == 0).nonzero().flatten().tolist()
    if zero:
        raise SpecError(field, f"{path}: row(s) {_rows(zero)} are all zeros: no direction to render; drop them.")
    return m


def _rows(rows: list[int]) -> str:
    shown = ", ".join(map(str, rows[:_SHOWN_ROWS]))
    return shown + (f" and {len(rows) - _SHOWN_ROWS} more" if len(rows) > _SHOWN_ROWS else "")


def check_width(m: torch.Tensor, channels: int, layer: str, path: str, field: str = "objective.vector_file") -> None:
    """``SpecError`` unless the rows of ``m`` have one value per channel of ``layer``."""
    if m.shape[1] == channels:
        return
    hint = " It looks transposed (C x N): save its transpose." if m.shape[0] == channels else ""
    raise SpecError(field, f"{path}: rows have {m.shape[1]} values but layer {layer!r} has {channels} channels; "
                    f"the matrix must be N x {channels} (one direction per row).{hint}")


def dictionary_rows(path: str | Path, rows: list[int], *, key: str | None = None,
                    field: str = "objective.vector_file") -> torch.Tensor:
    """Rows ``rows`` of the dictionary in ``path``, as a (len(rows), C) tensor."""
    m = load_dictionary(path, key=key, field=field)
    for r in rows:
        if not 0 <= r < m.shape[0]:
            units_field = field.rsplit(".", 1)[0] + ".units" if "." in field else "units"
            raise SpecError(units_field, f"row {r} is out of range for {path} with {m.shape[0]} rows (0..{m.shape[0] - 1}).")
    return m[torch.tensor(rows, dtype=torch.long)]


def save_dictionary(path: str | Path, m: torch.Tensor | np.ndarray) -> Path:
    """Write an N x C matrix atomically as ``.npy`` (or ``.pt`` / ``.safetensors`` by the suffix)."""
    p = Path(path)
    t = torch.as_tensor(np.asarray(m, dtype=np.float32)).contiguous()
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import save

        data = save({"directions": t})
    elif suffix in (".pt", ".pth"):
        buf = io.BytesIO()
        torch.save(t, buf)
        data = buf.getvalue()
    else:
        buf = io.BytesIO()
        np.save(buf, t.numpy(), allow_pickle=False)
        data = buf.getvalue()
    atomic_write_bytes(p, data)
    return p
