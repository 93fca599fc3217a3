"""Steepest-descent choices: Adam (Lucid's), plain SGD, the sign step (L-infinity), NAdam (MACO).

The metric matters (Feature Visualization, "Preconditioning and parameterization"): a
gradient step is steepest descent for the L2 norm of the parameters; ``sign`` is steepest
descent for the L-infinity norm (every parameter moves by exactly lr), which raises high
frequencies in pixel space; the decorrelated Fourier space lowers them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch


class SignDescent(torch.optim.Optimizer):
    """L-infinity steepest descent: ``p -= lr * sign(grad)``."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def, override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"])
        return loss


OPTIMIZERS = ("adam", "sgd", "sign", "nadam")


def make_optimizer(kind: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """The optimizer ``kind`` (one of ``OPTIMIZERS``) over ``params``."""
    if kind == "adam":
        # The fused kernel updates each parameter in one pass instead of about ten.
        fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
        return torch.optim.Adam(params, lr=lr, fused=fused or None)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if kind == "sign":
        return SignDescent(params, lr=lr)
    if kind == "nadam":
        return torch.optim.NAdam(params, lr=lr)
    raise ValueError(f"unknown optimizer {kind!r}; use one of {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class Schedule:
    """The learning rate over a render's steps, as a factor of the base rate.

    ``warmup`` steps rise linearly to 1; then ``constant`` stays at 1, and ``cosine`` falls
    along a half cosine to ``final`` at the last step.
    """

    kind: str = "constant"
    steps: int = 1
    final: float = 0.1
    warmup: int = 0

    @property
    def is_constant(self) -> bool:
        """True when every step runs at the base rate."""
        return self.kind == "constant" and self.warmup == 0

    def factor(self, step: int) -> float:
        """The factor at ``step`` (0-based)."""
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        if self.kind == "constant":
            return 1.0
        span = max(1, self.steps - 1 - self.warmup)
        t = min(1.0, (step - self.warmup) / span)
        return self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * t))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for group in opt.param_groups:
        group["lr"] = lr
