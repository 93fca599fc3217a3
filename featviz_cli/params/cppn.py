"""CPPN parameterization: the image is a small network of the pixel coordinates (Lucid ``param/cppn.py``).

A compositional pattern-producing network maps each pixel's (x, y) through 1x1
layers with a composite arctan activation to RGB. Its images are smooth,
resolution-independent patterns; every batch element has its own network.
Lucid's choices: coordinates in [-sqrt(3), sqrt(3)] (unit variance), weights
N(0, 1/fan_in), zero biases, activation atan(x) -> [atan/0.67, atan^2/0.6],
a zero-initialized sigmoid output layer (the first image is grey). CPPNs want a
small learning rate (about 0.005 with Adam).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from ._registry import register_param
from .base import ImageParam


def composite_activation(x: torch.Tensor) -> torch.Tensor:
    """atan(x) and its square, each scaled to unit variance (Lucid): doubles the channels."""
    a = torch.atan(x)
    return torch.cat([a / 0.67, a * a / 0.6], dim=1)


def coordinates(size: int) -> torch.Tensor:
    """(2, size*size) pixel coordinates (x, y) in [-sqrt(3), sqrt(3)], row-major."""
    r = math.sqrt(3.0)
    axis = torch.linspace(-r, r, size)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x, y]).flatten(1)


class CPPNImage(ImageParam):
    """One CPPN per batch element; ``params`` are its weights and biases."""

    def __init__(self, batch: int, size: int, *, layers: int = 8, width: int = 24,
                 generator: torch.Generator, device: torch.device) -> None:
        super().__init__(decorrelate=False, output="sigmoid")
        self.size = size
        self.coords = coordinates(size).to(device)
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor] = []
        fan_in = 2
        for _ in range(layers):
            w = torch.randn((batch, width, fan_in), generator=generator) * math.sqrt(1.0 / fan_in)
            self.weights.append(w.to(device).requires_grad_(True))
            self.biases.append(torch.zeros((batch, width, 1), device=device, requires_grad=True))
            fan_in = 2 * width  # the composite activation doubles the channels
        self.weights.append(torch.zeros((batch, 3, fan_in), device=device, requires_grad=True))
        self.biases.append(torch.zeros((batch, 3, 1), device=device, requires_grad=True))
        self.params = self.weights + self.biases

    def __call__(self) -> torch.Tensor:
        b = self.weights[0].shape[0]
        h = self.coords.expand(b, -1, -1)
        for w, bias in zip(self.weights[:-1], self.biases[:-1]):
            h = composite_activation(torch.bmm(w, h) + bias)
        rgb = torch.sigmoid(torch.bmm(self.weights[-1], h) + self.biases[-1])
        return rgb.view(b, 3, self.size, self.size)

    def raw(self) -> torch.Tensor:
        return torch.logit(self().clamp(1e-6, 1 - 1e-6))

    def blur_(self, sigma: float) -> None:
        raise NotImplementedError("a CPPN image cannot be blurred; set regularizers.blur_every: 0")


@register_param("cppn", describe=lambda o: f"cppn({o['cppn_layers']} layers x {o['cppn_width']}), {o['size']}px")
def build_cppn(o: Mapping[str, Any], batch: int, generator: torch.Generator, device: torch.device) -> CPPNImage:
    """A ``CPPNImage`` from the ``param:`` options."""
    return CPPNImage(batch, o["size"], layers=o["cppn_layers"], width=o["cppn_width"], generator=generator,
                     device=device)
