"""The receptive field of a layer's units, measured from input gradients.

The crop around an example's maximum is sized by it: :func:`receptive_field` takes the
gradient of the layer's units at one map position with respect to seeded noise images and
finds the square around its centre that holds a given mass of it (the effective receptive
field), the region where it is nonzero at all (the theoretical one) and the stride.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..hooks import forward_to
from ..models import ModelInfo
from ..models.preprocess import Preprocess

RF_SAMPLES = 2  # noise images averaged for the receptive field (per position)


@dataclass(frozen=True)
class ReceptiveField:
    """Where a unit at map position (y, x) looks in the ``input_size`` px network input.

    Measured from the gradient of the layer's units at one reference position with respect to
    noise images: ``size`` is the side of the square around the gradient's centre that holds
    ``mass`` of the gradient (the effective receptive field), ``full`` the side of the region
    where the gradient is nonzero at all (the theoretical one, clipped to the input), ``stride``
    the input pixels per map step (measured from a second position) and ``centre`` the input
    position of map position ``ref``.
    """

    size: float
    full: float
    stride: tuple[float, float]
    centre: tuple[float, float]
    ref: tuple[int, int]
    mass: float
    input_size: int
    map_size: tuple[int, int]

    def box(self, y: int, x: int) -> tuple[float, float, float, float]:
        """The crop box ``(x0, y0, x1, y1)`` in input pixels for map position (y, x), clipped to the input."""
        cy = self.centre[0] + (y - self.ref[0]) * self.stride[0]
        cx = self.centre[1] + (x - self.ref[1]) * self.stride[1]
        half, n = self.size / 2, self.input_size
        return (max(0.0, cx - half), max(0.0, cy - half), min(float(n), cx + half), min(float(n), cy + half))


def _square_side(grad: torch.Tensor, cy: float, cx: float, mass: float) -> float:
    """Side of the smallest square centred at (cy, cx) holding ``mass`` of ``grad`` (the whole of it for 1.0)."""
    total = float(grad.sum())
    h, w = grad.shape
    integral = torch.nn.functional.pad(grad.cumsum(0).cumsum(1), (1, 0, 1, 0))
    target = total * mass if mass < 1 else total * (1 - 1e-9)
    iy, ix = int(round(cy - 0.5)), int(round(cx - 0.5))
    for r in range(0, max(h, w) + 1):
        y0, y1, x0, x1 = max(0, iy - r), min(h, iy + r + 1), max(0, ix - r), min(w, ix + r + 1)
        inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        if float(inside) >= target:
            return float(2 * r + 1)
    return float(max(h, w))


def _inside(grad: torch.Tensor) -> bool:
    """Whether the nonzero part of a 2-D map stays off its border (the region is not clipped)."""
    nz = (grad > 0).nonzero()
    h, w = grad.shape
    return bool(nz[:, 0].min() > 0 and nz[:, 1].min() > 0 and nz[:, 0].max() < h - 1 and nz[:, 1].max() < w - 1)


def _extent_centre(grad: torch.Tensor) -> tuple[float, float]:
    """Centre (y, x) of the bounding box of the nonzero part of a 2-D map, in pixel-centre coordinates."""
    nz = (grad > 0).nonzero()
    return (float(nz[:, 0].min() + nz[:, 0].max() + 1) / 2, float(nz[:, 1].min() + nz[:, 1].max() + 1) / 2)


def _centroid(grad: torch.Tensor) -> tuple[float, float]:
    """Centre of mass (y, x) of a 2-D map, in pixel-centre coordinates (pixel i spans [i, i+1))."""
    total = grad.sum()
    ys = torch.arange(grad.shape[0], dtype=grad.dtype) + 0.5
    xs = torch.arange(grad.shape[1], dtype=grad.dtype) + 0.5
    return float((grad.sum(1) * ys).sum() / total), float((grad.sum(0) * xs).sum() / total)


def receptive_field(
    model: nn.Module,
    info: ModelInfo,
    layer: str,
    *,
    mass: float = 0.9,
    device: torch.device | str = "cpu",
    samples: int = RF_SAMPLES,
    seed: int = 0,
) -> ReceptiveField | None:
    """Measure a layer's receptive field from input gradients on seeded noise (None without a spatial map).

    The gradient of the sum of all units' magnitudes at the map's centre (and at a second
    position, for the stride) with respect to ``samples`` noise images; only the input gets a gradient,
    the model's parameters are untouched.
    """
    n = info.input_size
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(2 * samples, 3, n, n, generator=gen).to(device).requires_grad_(True)
    pre = Preprocess(info).to(device)
    with torch.enable_grad():
        act = forward_to(model, pre(x), [layer])[layer]
        if act.dim() != 4 or act.shape[-1] * act.shape[-2] == 1:
            return None
        h, w = act.shape[-2:]
        ref = (h // 2, w // 2)
        step = (max(1, h // 4) if h > 1 else 0, max(1, w // 4) if w > 1 else 0)
        other = (min(h - 1, ref[0] + step[0]), min(w - 1, ref[1] + step[1]))
        # |a| summed over units: opposite units (a detector and its negation) do not cancel.
        total = act[:samples, :, ref[0], ref[1]].abs().sum() + act[samples:, :, other[0], other[1]].abs().sum()
        (grad,) = torch.autograd.grad(total, x)
    g = grad.detach().abs().double().cpu()
    g_ref, g_other = g[:samples].sum((0, 1)), g[samples:].sum((0, 1))
    if float(g_ref.sum()) == 0 or float(g_other.sum()) == 0:  # dead units everywhere: fall back to strides
        stride = (n / h, n / w)
        centre = ((ref[0] + 0.5) * stride[0], (ref[1] + 0.5) * stride[1])
        return ReceptiveField(max(stride), max(stride), stride, centre, ref, mass, n, (h, w))
    unclipped = _inside(g_ref) and _inside(g_other)
    # The centre of the nonzero region is exact for convolutions; when it is clipped by the
    # input's border, the centre of mass is the better estimate.
    cy, cx = _extent_centre(g_ref) if unclipped else _centroid(g_ref)
    oy, ox = _extent_centre(g_other) if unclipped else _centroid(g_other)
    stride = [n / h, n / w]  # exact when the input size is a multiple of the layer's total stride
    if unclipped:  # measure it
        if other[0] != ref[0]:
            stride[0] = (oy - cy) / (other[0] - ref[0])
        if other[1] != ref[1]:
            stride[1] = (ox - cx) / (other[1] - ref[1])
    nonzero = (g_ref > 0).nonzero()
    full = float(max(nonzero[:, 0].max() - nonzero[:, 0].min(), nonzero[:, 1].max() - nonzero[:, 1].min()) + 1)
    size = min(_square_side(g_ref, cy, cx, mass), full)
    return ReceptiveField(size, full, (stride[0], stride[1]), (cy, cx), ref, mass, n, (int(h), int(w)))
