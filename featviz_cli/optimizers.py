"""Steepest-descent choices: Adam (Lucid's), plain SGD, the sign step (L-infinity), NAdam (MACO).

The metric matters (Feature Visualization, "Preconditioning and parameterization"): a
gradient step is steepest descent for the L2 norm of the parameters; ``sign`` is steepest
descent for the L-infinity norm (every parameter moves by exactly lr), which raises high
frequencies in pixel space; the decorrelated Fourier space lowers them.
"""
from __future__ import annotations

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
