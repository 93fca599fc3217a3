"""Where and how precisely a render runs: the device, autocast precision, memory format, host memory.

``Execution`` gathers the choices (device, autocast dtype, channels_last, compile) that change
how fast the network runs but not what it computes beyond rounding. ``to_device`` copies small
host tensors without waiting, ``ValueReader`` reads progress values without draining the queue.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import sys
from dataclasses import dataclass
from typing import Iterator

import torch

from ..errors import SpecError


def pick_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an explicit device that is missing is an error."""
    has_mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SpecError("device", f"{name!r} asked for, but CUDA is not available here; use 'auto' or 'cpu'.")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise SpecError("device", f"{name!r}: only {torch.cuda.device_count()} CUDA device(s) here.")
    if name == "mps" and not has_mps:
        raise SpecError("device", "'mps' asked for, but MPS is not available here; use 'auto' or 'cpu'.")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 in hardware (AMX tiles or AVX-512 BF16), which oneDNN uses."""
    cpu = getattr(torch, "cpu", None)
    try:
        return bool(cpu._is_amx_tile_supported() or cpu._is_avx512_bf16_supported())  # type: ignore[union-attr]
    except AttributeError:  # older torch: no way to ask, so no bf16 by default
        return False


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for the network, or None for plain fp32.

    ``auto``: bf16 on CUDA where supported (else fp16 with loss scaling), bf16 on a CPU
    with native bf16 (AMX / AVX-512 BF16), fp32 elsewhere (MPS, older CPUs). BENCHMARKS.md
    has the measurements behind this choice, image differences included.
    """
    if name == "fp32":
        return None
    if name == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise SpecError("precision", "this CUDA device has no bf16; use fp16, fp32 or auto.")
        return torch.bfloat16
    if name == "fp16":
        if device.type != "cuda":
            raise SpecError("precision", "fp16 needs a CUDA device; use fp32 or bf16 here.")
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def resolve_channels_last(setting: bool | str, device: torch.device) -> bool:
    """``auto``: channels_last on CUDA and CPU (faster convolutions in cuDNN and oneDNN), not on MPS."""
    if setting == "auto":
        return device.type in ("cuda", "cpu")
    return bool(setting)


@contextlib.contextmanager
def cudnn_autotune(device: torch.device) -> Iterator[None]:
    """Let cuDNN pick the fastest convolution algorithms for the fixed shapes of a render (CUDA only)."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


#: Set (to anything) to leave the C library's allocator as it is.
SYSTEM_MALLOC_ENV = "FEATVIZ_SYSTEM_MALLOC"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


@functools.cache
def tune_host_allocator() -> str:
    """Let glibc keep freed memory for the next step instead of returning it to the OS; says what was set.

    A step frees and reallocates the same large activations every time. By default glibc
    gives big blocks back to the kernel (munmap, heap trimming) and the next step takes
    them again, page fault by page fault: on 2 CPU cores that was a third of an
    EfficientNet-Lite0 step (BENCHMARKS.md). Fixing the mmap threshold at 32 MiB and
    trimming only above 2 GiB keeps the memory (peak RSS grows about 10%). Process-wide and
    once; glibc only; ``FEATVIZ_SYSTEM_MALLOC=1`` leaves the allocator alone.
    """
    if os.environ.get(SYSTEM_MALLOC_ENV) or not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return "system"
    try:
        libc = ctypes.CDLL(None)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):
        return "system"
    return "glibc: mmap above 32 MiB, trim above 2 GiB" if ok else "system"


def to_device(t: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Copy a small host tensor to ``device`` without waiting for the device (pinned, non-blocking on CUDA)."""
    if device.type != "cuda":
        return t.to(device, dtype)
    return t.to(dtype or t.dtype).pin_memory().to(device, non_blocking=True)


class ValueReader:
    """Reads scalar tensors for progress reports without draining the device queue.

    On CUDA a value is copied to pinned memory asynchronously and read at the NEXT
    report, by when the device is long past it: the host waits only for that old copy,
    never for the steps queued after it. Elsewhere values are read at once.
    """

    def __init__(self, device: torch.device) -> None:
        self.lagged = device.type == "cuda"
        self.pending: tuple[int, torch.Tensor, torch.cuda.Event] | None = None

    def push(self, step: int, value: torch.Tensor) -> tuple[int, float] | None:
        """Queue the value of ``step``; return an earlier (step, value) that is ready, if any."""
        if not self.lagged:
            return step, float(value)
        host = torch.empty((), dtype=value.dtype, pin_memory=True)
        host.copy_(value.detach(), non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        previous, self.pending = self.pending, (step, host, event)
        return self._read(previous)

    def flush(self) -> tuple[int, float] | None:
        """The last queued value (waits for it)."""
        previous, self.pending = self.pending, None
        return self._read(previous)

    @staticmethod
    def _read(item: tuple[int, torch.Tensor, torch.cuda.Event] | None) -> tuple[int, float] | None:
        if item is None:
            return None
        step, host, event = item
        event.synchronize()
        return step, float(host)


@dataclass(frozen=True)
class Execution:
    """How a render runs: the device, the network's autocast dtype (None: fp32), channels_last, compile."""

    device: torch.device
    dtype: torch.dtype | None = None
    channels_last: bool | str = "auto"
    compile: bool = False

    @classmethod
    def resolve(cls, device: str, precision: str = "auto", channels_last: bool | str = "auto",
                compile: bool = False) -> "Execution":
        """The execution the settings ask for on this machine (``auto`` resolved; errors name the field)."""
        where = pick_device(device)
        return cls(where, resolve_precision(precision, where), channels_last, compile)

    @property
    def precision(self) -> str:
        """The precision as ``meta.json`` names it: ``fp32``, ``bfloat16`` or ``float16``."""
        return str(self.dtype).replace("torch.", "") if self.dtype else "fp32"
