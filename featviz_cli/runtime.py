"""How the network runs fast: precision, memory format, cuDNN autotuning, compilation, no stalls.

``Network`` is the truncated network a render runs, with everything that makes it
fast and nothing that changes what it computes beyond rounding: autocast to bf16/fp16,
channels_last tensors, an optional ``torch.compile`` of a real truncated module, and
cuDNN autotuning on CUDA. ``ValueReader`` reads progress values from the device
without draining its queue, and ``to_device`` copies small host tensors without waiting.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import sys
from typing import Callable, ContextManager, Iterator, Sequence

import torch
import torch.nn as nn

from .errors import SpecError
from .hooks import OUTPUT, forward_to, patched_forwards


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


def strided_depthwise_convs(model: nn.Module) -> list[nn.Conv2d]:
    """The depthwise convolutions of ``model`` (one filter per channel) with a stride above 1."""
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1
            and m.groups == m.in_channels == m.out_channels and max(m.stride) > 1]


def _in_fp32(conv_forward: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def run(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *args: object) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False):
            return conv_forward(x.float(), weight, bias, *args).to(x.dtype)

    return run


def fp32_strided_depthwise(model: nn.Module, device: torch.device, dtype: torch.dtype | None) -> ContextManager[int]:
    """Within the block, on the CPU under bf16, strided depthwise convolutions run in fp32; yields how many.

    oneDNN's bf16 backward of a strided depthwise convolution is several times slower than
    its fp32 one (BENCHMARKS.md: 45 vs 26 ms for a 5x5 stride-2 layer of EfficientNet-Lite0,
    batch 16), more than the two casts cost. Stride-1 depthwise layers are as fast in bf16
    and stay there. Elsewhere (CUDA, fp32) nothing changes.
    """
    convs = strided_depthwise_convs(model) if device.type == "cpu" and dtype == torch.bfloat16 else []
    # The convolution proper (``_conv_forward``), not ``forward``: a layer that pads its input
    # itself (TF "SAME") then pads in bf16, half the bytes of an fp32 copy each way.
    return patched_forwards([(m, _in_fp32(m._conv_forward)) for m in convs], method="_conv_forward")


@contextlib.contextmanager
def rewritten(model: nn.Module, layers: Sequence[str], probe: torch.Tensor, device: torch.device,
              dtype: torch.dtype | None) -> Iterator[dict[str, int]]:
    """Within the block, ``model`` is the network featviz renders with; yields what was rewritten.

    BatchNorm folded into the convolutions (``folded_batchnorm``, checked on ``probe``) and
    strided depthwise convolutions in fp32 on a bf16 CPU (``fp32_strided_depthwise``); the
    model is restored on exit. The engine and the benchmark floors both use this.
    """
    with folded_batchnorm(model, layers, probe) as folded, fp32_strided_depthwise(model, device, dtype) as fp32:
        yield {"batchnorm_folded": len(folded), "fp32_strided_depthwise": fp32}


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


def _conv_bn_pairs(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> list[tuple[nn.Conv2d, str]]:
    """(conv, batchnorm name) pairs up to ``layers`` where a BatchNorm2d's input is exactly a Conv2d's output."""
    produced: list[tuple[torch.Tensor, nn.Conv2d]] = []
    calls: dict[nn.Module, int] = {}
    bn_inputs: list[tuple[str, torch.Tensor]] = []
    names = {m: n for n, m in model.named_modules()}
    handles = []

    def on_conv(m: nn.Module, _i: object, out: torch.Tensor) -> None:
        calls[m] = calls.get(m, 0) + 1
        produced.append((out, m))  # keeps the tensor alive, so identity below is exact

    def on_bn(m: nn.Module, inp: tuple[torch.Tensor, ...], _o: object) -> None:
        calls[m] = calls.get(m, 0) + 1
        bn_inputs.append((names[m], inp[0]))

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(on_conv))
        elif isinstance(m, nn.BatchNorm2d) and m.track_running_stats and m.running_var is not None:
            handles.append(m.register_forward_hook(on_bn))
    try:
        with torch.no_grad():
            forward_to(model, x, layers)
    finally:
        for h in handles:
            h.remove()
    pairs = []
    for bn_name, t in bn_inputs:
        conv = next((c for o, c in produced if o is t), None)
        bn = model.get_submodule(bn_name)
        if conv is not None and calls[conv] == 1 and calls[bn] == 1:
            pairs.append((conv, bn_name))
    return pairs


@contextlib.contextmanager
def folded_batchnorm(model: nn.Module, keep: Sequence[str], x: torch.Tensor) -> Iterator[list[str]]:
    """Fold eval-mode BatchNorm2d into the Conv2d that feeds it, for the duration of the block.

    A folded pair is one convolution instead of a convolution and a normalization, forward
    and backward (about 15% of a googlenet step on the CPU). Convs named in ``keep`` (layers
    an objective reads) are left alone. The fold is checked: the ``keep`` layers' activations
    on ``x`` must match the unfolded network's, else nothing is folded. The model's own
    weights and modules are restored on exit. Yields the names of the folded BatchNorms.
    """
    keep_set = set(keep)
    names = {m: n for n, m in model.named_modules()}
    if not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        yield []
        return
    try:
        found = _conv_bn_pairs(model, x, keep)
    except Exception:  # noqa: BLE001 - the probe failed (odd model or layer): no folding; the render reports errors
        found = []
    pairs = [(c, bn) for c, bn in found if names[c] not in keep_set]
    saved: list[tuple[nn.Conv2d, torch.Tensor, torch.Tensor | None, str, nn.Module]] = []
    if not pairs:
        yield []
        return
    try:
        with torch.no_grad():
            before = forward_to(model, x, keep)
            for conv, bn_name in pairs:
                bn = model.get_submodule(bn_name)
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
                shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                saved.append((conv, conv.weight, conv.bias, bn_name, bn))
                conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
                conv.bias = nn.Parameter((bias - bn.running_mean) * scale + shift, requires_grad=False)
                _set_module(model, bn_name, nn.Identity())
            after = forward_to(model, x, keep)
        if not _close(before, after, keep):
            _restore(model, saved)
        yield [item[3] for item in saved]
    finally:
        _restore(model, saved)


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], names: Sequence[str]) -> bool:
    for n in names:
        x, y = a[n].float(), b[n].float()
        if x.shape != y.shape or not torch.allclose(x, y, rtol=1e-3, atol=1e-4 * (1 + float(x.abs().max()))):
            return False
    return True


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _restore(model: nn.Module, saved: list[tuple[nn.Conv2d, torch.Tensor, torch.Tensor | None, str, nn.Module]]) -> None:
    for conv, weight, bias, bn_name, bn in reversed(saved):
        conv.weight = weight  # type: ignore[assignment]
        conv.bias = bias  # type: ignore[assignment]
        _set_module(model, bn_name, bn)
    saved.clear()


def truncated_module(model: nn.Module, layers: Sequence[str]) -> nn.Module:
    """A real module computing only ``layers`` (a dict of them), traced with torch.fx.

    Modules without children are kept as leaves, so custom layers whose forward depends
    on the input's shape (TensorFlow SAME padding) trace too. Raises when the model's
    forward cannot be traced (data-dependent control flow); callers fall back to hooks.
    """
    from torchvision.models.feature_extraction import create_feature_extractor

    leaves = sorted({type(m) for m in model.modules() if not list(m.children())}, key=lambda t: t.__name__)
    return create_feature_extractor(
        model, return_nodes={name: name for name in layers}, tracer_kwargs={"leaf_modules": leaves}
    )


class Network:
    """The network as a render runs it: ``net(x)`` -> {layer: activation}, stopped at the deepest layer.

    ``x`` is the preprocessed image batch. The forward runs under autocast when ``dtype``
    is given, on channels_last tensors when asked, and through ``torch.compile`` of a
    truncated module when ``compile`` is set and the model traces; what was actually used
    is in ``notes`` (e.g. why compile fell back to eager).
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        device: torch.device,
        *,
        dtype: torch.dtype | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        self.model = model
        self.layers = list(layers)
        self.device = device
        self.dtype = dtype
        self.channels_last = channels_last
        self.notes: list[str] = []
        self.compiled: nn.Module | None = None
        if channels_last:
            model.to(memory_format=torch.channels_last)
        if compile:
            self.compiled = self._compile()

    def _compile(self) -> nn.Module | None:
        if OUTPUT in self.layers:
            inner = [name for name in self.layers if name != OUTPUT]
            if inner:
                self.notes.append("compile: skipped (objective needs both the output and inner layers)")
                return None
            return torch.compile(self.model)  # type: ignore[return-value]
        try:
            module = truncated_module(self.model, self.layers)
        except Exception as e:  # noqa: BLE001 - any tracing failure means: use hooks
            self.notes.append(f"compile: the model does not trace with torch.fx ({type(e).__name__}); ran eager")
            return None
        return torch.compile(module)  # type: ignore[return-value]

    def _eager(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return forward_to(self.model, x, self.layers)

    def _run_compiled(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        assert self.compiled is not None
        out = self.compiled(x)
        return {OUTPUT: out} if isinstance(out, torch.Tensor) else dict(out)

    def warm_up(self, shape: Sequence[int]) -> None:
        """Compile now (forward and backward on zeros); on any compiler failure fall back to eager."""
        if self.compiled is None:
            return
        x = torch.zeros(*shape, device=self.device, requires_grad=True)
        try:
            acts = self(x)
            sum(a.float().sum() for a in acts.values()).backward()  # type: ignore[union-attr]
        except Exception as e:  # noqa: BLE001 - a missing compiler, an unsupported op: run eager instead
            self.compiled = None
            self.notes.append(f"compile: failed ({type(e).__name__}: {str(e).splitlines()[0][:160]}); ran eager")
        else:
            self.notes.append("compile: torch.compile of the truncated network")

    def __call__(self, x: torch.Tensor, *, eager: bool = False) -> dict[str, torch.Tensor]:
        """Activations of the requested layers for the preprocessed batch ``x``."""
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast(self.device.type, dtype=self.dtype) if self.dtype else contextlib.nullcontext()
        with ctx:
            if self.compiled is not None and not eager:
                return self._run_compiled(x)
            return self._eager(x)
