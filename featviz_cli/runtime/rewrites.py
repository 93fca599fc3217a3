"""Rewrites of the user's network for the duration of a render, each restored on exit.

BatchNorm folded into the convolution that feeds it (checked on a probe image), and strided
depthwise convolutions in fp32 on a bf16 CPU; ``rewritten`` applies both, as the engine and
the benchmark floors run the network.
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Iterator, Sequence

import torch
import torch.nn as nn

from ..hooks import forward_to, patched_forwards


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


@contextlib.contextmanager
def kept_memory_format(model: nn.Module) -> Iterator[None]:
    """Within the block the model's 4-D weights may be converted (``Network``'s channels_last);
    on exit each is put back into the memory layout (strides) it had before."""
    layouts = [(t, t.stride()) for t in list(model.parameters()) + list(model.buffers()) if t.dim() == 4]
    try:
        yield
    finally:
        with torch.no_grad():
            for t, stride in layouts:
                if t.stride() != stride:
                    t.data = torch.empty_strided(t.shape, stride, dtype=t.dtype, device=t.device).copy_(t.data)
