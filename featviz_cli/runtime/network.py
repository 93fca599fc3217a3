"""The network as a render runs it: truncated at the deepest layer, autocast, channels_last, compiled.

``Network`` is the truncated network a render runs, with everything that makes it
fast and nothing that changes what it computes beyond rounding: autocast to bf16/fp16,
channels_last tensors, an optional ``torch.compile`` of a real truncated module.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import torch
import torch.nn as nn

from ..hooks import OUTPUT, forward_to


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

    def __call__(self, x: torch.Tensor, *, eager: bool = False, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Activations of the requested layers (or of ``layers``, eagerly) for the preprocessed batch ``x``."""
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast(self.device.type, dtype=self.dtype) if self.dtype else contextlib.nullcontext()
        with ctx:
            if layers is not None:
                return forward_to(self.model, x, layers)
            if self.compiled is not None and not eager:
                return self._run_compiled(x)
            return self._eager(x)
