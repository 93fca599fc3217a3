"""Lucid's redirected ReLU: early in the optimization, let gradients through ReLUs that are off.

A ReLU that is off (input below 0) passes no gradient, so a unit that is dead for the
first image may never wake up, and the render stays grey. For the first N steps
Lucid replaces the ReLU gradient: where the ordinary gradient of a whole batch element
is zero, the incoming gradient passes anyway, except where it would push an input
that is already off further off. ReLU6 is treated the same way at both bounds.

Only ``nn.ReLU`` and ``nn.ReLU6`` modules can be redirected (``F.relu`` calls inside a
``forward`` cannot); ``redirected_relus`` swaps their ``forward`` for the duration of a
``with`` block and always restores it, also on errors.
"""
from __future__ import annotations

import functools
from typing import Any, ContextManager

import torch
import torch.nn as nn

from .hooks import patched_forwards


class RedirectedClamp(torch.autograd.Function):
    """``x.clamp(lo, hi)`` forward; Lucid's redirected gradient backward (``hi`` None: plain ReLU)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lo: float, hi: float | None, inplace: bool = False) -> torch.Tensor:
        if inplace:  # as the module itself would (nn.ReLU(inplace=True)): no new tensor
            out = x.clamp_(min=lo) if hi is None else x.clamp_(lo, hi)
            ctx.mark_dirty(x)
        else:
            out = x.clamp(min=lo) if hi is None else x.clamp(lo, hi)
        # The output tells all the backward needs: x <= lo exactly where out <= lo (same at hi).
        ctx.save_for_backward(out)
        ctx.lo, ctx.hi = lo, hi
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        (out,) = ctx.saved_tensors  # the clamped output: the tests below give the same on it as on the input
        lo, hi = ctx.lo, ctx.hi
        # The ordinary gradient in one fused pass (what nn.ReLU / nn.ReLU6 themselves run).
        if hi is None:
            ordinary = torch.ops.aten.threshold_backward(grad, out, lo)
        else:
            ordinary = torch.ops.aten.hardtanh_backward(grad, out, lo, hi)
        rows = _rows(ordinary)
        # Most ReLUs pass some gradient to every batch element: then the redirected gradient is
        # not needed. A nonzero row sum proves it in one cheap pass (a zero sum falls through to
        # the exact test); asking costs a host-device sync, so only where that is free (not CUDA).
        if not grad.is_cuda and bool(rows.sum(1).ne(0).all()):
            return ordinary, None, None, None
        alive = rows.ne(0).any(1).view(-1, *([1] * (out.dim() - 1)))
        # The loss is minimized: a positive gradient lowers x, a negative one raises it.
        outward = (out <= lo) & (grad > 0)
        if hi is not None:
            outward |= (out >= hi) & (grad < 0)
        redirected = grad.masked_fill(outward, 0)
        return torch.where(alive, ordinary, redirected), None, None, None


def _rows(t: torch.Tensor) -> torch.Tensor:
    """``t`` as one row per batch element, a view where the memory layout allows (also channels_last)."""
    if t.dim() < 2:
        return t.reshape(1, -1)
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        t = t.permute(0, 2, 3, 1)
    return t.reshape(t.shape[0], -1)


def redirected_relu(x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """ReLU with the redirected gradient."""
    return RedirectedClamp.apply(x, 0.0, None, inplace)


def redirected_relu6(x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """ReLU6 with the redirected gradient."""
    return RedirectedClamp.apply(x, 0.0, 6.0, inplace)


def relu_modules(model: nn.Module) -> list[nn.Module]:
    """The ``nn.ReLU`` and ``nn.ReLU6`` modules of ``model`` (each once)."""
    return [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]


def redirected_relus(model: nn.Module) -> ContextManager[int]:
    """Within the block, ReLU/ReLU6 modules of ``model`` use the redirected gradient; yields how many."""
    return patched_forwards([(m, functools.partial(redirected_relu6 if isinstance(m, nn.ReLU6) else redirected_relu,
                                                   inplace=bool(getattr(m, "inplace", False))))
                             for m in relu_modules(model)])
