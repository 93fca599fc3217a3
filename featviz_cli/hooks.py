"""Layers by name: resolve, list with shapes, capture activations, stop the forward early.

Hooks are only ever added inside a context manager and always removed, also when
the forward raises. ``run_to_layers`` stops the network as soon as every layer an
objective needs has been computed, so no work is spent on the rest of it.
"""
from __future__ import annotations

import difflib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn

from .errors import LayerError

#: Name of the model's final output (logits) in activation dicts.
OUTPUT = "<output>"


class _StopForward(Exception):
    """Raised inside a hook once every requested layer has been captured."""


def layer_names(model: nn.Module) -> list[str]:
    """Every addressable module name, as ``model.named_modules()`` gives them (root excluded)."""
    return [name for name, _ in model.named_modules() if name]


def resolve_layer(model: nn.Module, name: str, *, field: str = "layer") -> nn.Module:
    """The module called ``name``; an unknown name raises ``LayerError`` with the closest names."""
    if name:
        # Walks the dotted path: every forward resolves its layers, so no listing of all modules.
        try:
            return model.get_submodule(name)
        except AttributeError:
            pass
    names = layer_names(model)
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f" Closest: {', '.join(close)}." if close else ""
    raise LayerError(f"{field}: no layer {name!r} in this model.{hint} List them with 'featviz layers MODEL'.")


@contextmanager
def patched_forwards(patches: Sequence[tuple[nn.Module, Callable[..., object]]],
                     method: str = "forward") -> Iterator[int]:
    """Within the block, each module runs the given function as its ``method``; yields how many.

    The module's previous ``method`` (its class's, or an instance attribute set earlier) is
    always restored, also when the block raises.
    """
    swapped: list[tuple[nn.Module, object]] = []
    try:
        for module, function in patches:
            swapped.append((module, module.__dict__.get(method)))
            setattr(module, method, function)
        yield len(swapped)
    finally:
        for module, previous in reversed(swapped):
            delattr(module, method)
            if previous is not None:
                setattr(module, method, previous)


def first_tensor(output: object) -> torch.Tensor | None:
    """The activation a module produced: itself if a tensor, else the first tensor in a tuple/list."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            t = first_tensor(item)
            if t is not None:
                return t
    return None


@contextmanager
def capture(model: nn.Module, layers: Sequence[str], *, stop_early: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``layers`` during forwards run inside the block.

    With ``stop_early`` the forward is aborted (internally) once all of them are
    captured; call the model through ``forward_to`` to swallow that signal.
    """
    acts: dict[str, torch.Tensor] = {}
    wanted = set(layers)
    handles = []

    def make_hook(name: str):
        def hook(_module: nn.Module, _inp: object, out: object) -> None:
            t = first_tensor(out)
            if t is None:
                raise LayerError(f"layer {name!r} does not output a tensor; choose another layer.")
            if name not in acts:  # a module used twice: keep its first use
                acts[name] = t
            if stop_early and wanted.issubset(acts):
                raise _StopForward

        return hook

    try:
        for name in wanted:
            handles.append(resolve_layer(model, name).register_forward_hook(make_hook(name)))
        yield acts
    finally:
        for h in handles:
            h.remove()


def forward_to(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Run ``model(x)`` only as far as needed to produce ``layers`` (``OUTPUT`` = the final output)."""
    inner = [name for name in layers if name != OUTPUT]
    need_output = OUTPUT in layers
    with capture(model, inner, stop_early=not need_output) as acts:
        try:
            out = model(x)
        except _StopForward:
            out = None
        if need_output:
            t = first_tensor(out)
            if t is None:
                raise LayerError("the model's output is not a tensor; give the objective a 'layer'.")
            acts[OUTPUT] = t
        missing = [name for name in inner if name not in acts]
        if missing:
            raise LayerError(
                f"layer {missing[0]!r} was never called in the forward pass; choose a layer that runs."
            )
        return dict(acts)


@dataclass(frozen=True)
class LayerInfo:
    """One addressable layer: its name, module type and output shape without the batch dim."""

    name: str
    type: str
    shape: tuple[int, ...] | None

    @property
    def channels(self) -> int | None:
        """Number of units an objective can index (dim 1 for conv/linear, last dim for tokens)."""
        if not self.shape:
            return None
        return self.shape[-1] if len(self.shape) == 2 else self.shape[0]


def list_layers(model: nn.Module, x: torch.Tensor) -> list[LayerInfo]:
    """Every module with the shape of its output, found by one forward pass of ``x``."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []

    def make_hook(name: str):
        def hook(_m: nn.Module, _i: object, out: object) -> None:
            t = first_tensor(out)
            if t is not None and name not in shapes:
                shapes[name] = tuple(t.shape[1:])

        return hook

    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(make_hook(name)))
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return [
        LayerInfo(name, type(m).__name__, shapes.get(name)) for name, m in model.named_modules() if name
    ]


def channel_view(act: torch.Tensor) -> torch.Tensor:
    """Activations as (B, C, S): conv (B,C,H,W) and linear (B,C) as is, tokens (B,T,C) transposed."""
    if act.dim() == 4:
        return act.flatten(2)
    if act.dim() == 2:
        return act.unsqueeze(-1)
    if act.dim() == 3:
        return act.transpose(1, 2)
    raise LayerError(f"activations of shape {tuple(act.shape)} are not supported; use a layer with 2-4 dims.")
