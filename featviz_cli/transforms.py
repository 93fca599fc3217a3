"""Transformation robustness: seeded, per-image random pad, jitter, scale and rotate.

Each geometric transform is a small object that says how it changes the canvas
size and, per image, which affine map takes new canvas coordinates back to the
old ones. ``compose`` chains them and the final resize to the model's input
size into ONE bilinear resampling per step (torch-lucent does five), with an
independent random draw for every image in the batch. Non-geometric callables
``(x, generator) -> x`` can be mixed in; pending geometry is applied first.

All randomness comes from the ``torch.Generator`` passed in (on the CPU), so a
seed gives the same transforms on every device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch
import torch.nn.functional as F

from .runtime import to_device

Matrices = torch.Tensor  # (B, 3, 3) float64, homogeneous 2-D affine maps in pixel units


def _eye(b: int) -> Matrices:
    return torch.eye(3, dtype=torch.float64).repeat(b, 1, 1)


def _translate(tx: torch.Tensor, ty: torch.Tensor) -> Matrices:
    m = _eye(len(tx))
    m[:, 0, 2] = tx
    m[:, 1, 2] = ty
    return m


def _about_centre(size: float, linear: torch.Tensor) -> Matrices:
    """Apply a per-image 2x2 ``linear`` map about the canvas centre."""
    c = size / 2
    m = _eye(len(linear))
    m[:, :2, :2] = linear
    m[:, :2, 2] = c - linear @ torch.tensor([c, c], dtype=torch.float64)
    return m


def _choice(values: Sequence[float], b: int, gen: torch.Generator) -> torch.Tensor:
    idx = torch.randint(len(values), (b,), generator=gen)
    return torch.tensor(values, dtype=torch.float64)[idx]


@dataclass(frozen=True)
class Pad:
    """Pad every side by ``pixels``; the fill is a constant ``value`` or reflect/replicate."""

    pixels: int
    mode: str = "constant"
    value: float = 0.5

    def geometry(self, size: float, b: int, gen: torch.Generator) -> tuple[float, Matrices]:
        t = torch.full((b,), -float(self.pixels), dtype=torch.float64)
        return size + 2 * self.pixels, _translate(t, t)


@dataclass(frozen=True)
class Jitter:
    """Random crop losing ``pixels`` (Lucid's jitter): integer shifts 0..pixels per image."""

    pixels: int

    def geometry(self, size: float, b: int, gen: torch.Generator) -> tuple[float, Matrices]:
        off = torch.randint(self.pixels + 1, (2, b), generator=gen).to(torch.float64)
        return size - self.pixels, _translate(off[0], off[1])


@dataclass(frozen=True)
class Scale:
    """Zoom about the centre by a factor drawn from ``factors`` (canvas size kept)."""

    factors: tuple[float, ...]

    def geometry(self, size: float, b: int, gen: torch.Generator) -> tuple[float, Matrices]:
        s = _choice(self.factors, b, gen)
        lin = torch.zeros(b, 2, 2, dtype=torch.float64)
        lin[:, 0, 0] = lin[:, 1, 1] = 1 / s
        return size, _about_centre(size, lin)


@dataclass(frozen=True)
class Rotate:
    """Rotate about the centre by an angle (degrees) drawn from ``degrees``."""

    degrees: tuple[float, ...]

    def geometry(self, size: float, b: int, gen: torch.Generator) -> tuple[float, Matrices]:
        a = _choice(self.degrees, b, gen) * math.pi / 180
        cos, sin = torch.cos(a), torch.sin(a)
        lin = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
        return size, _about_centre(size, lin)


@dataclass
class Crops:
    """MACO's random multi-crop: ``count`` square crops of every image, each step.

    Crop centres are drawn around the image centre (``centres="normal"``: N(0.5, 0.15) of the
    side, as Xplique and Horama, so the edges are rarely seen) or anywhere (``"uniform"``:
    U(0, 1), so every part of the image is optimized about as often), then moved so the crop
    stays inside the image; the side is N(box, 0.05) of the image side, clipped to [0.05, 1],
    where ``box`` shrinks linearly from ``box_start`` to ``box_end`` as ``progress`` goes 0 -> 1
    (Xplique's MACO: 0.5 -> 0.05). The output holds ``count * B`` crops, crop-major
    (crop k of image b at index ``k * B + b``); the engine averages the objective over them.
    """

    count: int = 32
    box_start: float = 0.5
    box_end: float = 0.05
    centres: str = "normal"
    progress: float = 0.0

    def set_progress(self, progress: float) -> None:
        """Where the optimization is, from 0 (first step) to 1 (last step): sets the mean crop size."""
        self.progress = min(1.0, max(0.0, float(progress)))

    def box(self) -> float:
        """The mean crop side (fraction of the image side) at the current progress."""
        return self.box_start + (self.box_end - self.box_start) * self.progress

    def geometry(self, size: float, b: int, gen: torch.Generator) -> tuple[float, Matrices]:
        n = self.count * b
        side = (self.box() + 0.05 * torch.randn(n, generator=gen, dtype=torch.float64)).clamp(0.05, 1.0)
        if self.centres == "uniform":
            centre = torch.rand(2, n, generator=gen, dtype=torch.float64)
        else:
            centre = 0.5 + 0.15 * torch.randn(2, n, generator=gen, dtype=torch.float64)
        centre = torch.minimum(torch.maximum(centre, side / 2), 1 - side / 2)
        lin = torch.zeros(n, 2, 2, dtype=torch.float64)
        lin[:, 0, 0] = lin[:, 1, 1] = side
        m = _translate((centre[0] - side / 2) * size, (centre[1] - side / 2) * size) @ _about_centre(0.0, lin)
        return size, m


@dataclass(frozen=True)
class Noise:
    """Add Gaussian noise N(0, std) plus uniform noise U(-std/2, std/2) (MACO's robustness noise)."""

    std: float = 0.04

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        normal = torch.randn(x.shape, generator=gen)
        uniform = torch.rand(x.shape, generator=gen) - 0.5
        return x + (self.std * (normal + uniform)).to(x.device, x.dtype)


Geometric = Union[Pad, Jitter, Scale, Rotate, Crops]
PixelFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
Transform = Union[Geometric, PixelFn]


def final_size(transforms: Sequence[Transform], size: int) -> int:
    """Canvas size after the geometric transforms (before any resize to the model)."""
    s = float(size)
    gen = torch.Generator().manual_seed(0)
    for t in transforms:
        if hasattr(t, "geometry"):
            s, _ = t.geometry(s, 1, gen)
    return max(1, int(round(s)))


def _fill_and_mode(transforms: Sequence[Geometric]) -> tuple[float, str]:
    """The fill outside the image: as the first Pad says (Lucid pads with 0.5); without a Pad, the edge pixels."""
    for t in transforms:
        if isinstance(t, Pad):
            return t.value, {"constant": "zeros", "reflect": "reflection", "replicate": "border"}[t.mode]
    return 0.0, "border"


def affine_grid(theta: torch.Tensor, n: int) -> torch.Tensor:
    """``F.affine_grid(theta, (B, C, n, n), align_corners=False)`` in one broadcast sum.

    The grid is a row term plus a column term; torch's version multiplies every pixel's
    homogeneous coordinates by ``theta`` (a batched matmul and copies, several times the time).
    """
    base = (torch.arange(n, device=theta.device, dtype=theta.dtype) * 2 + 1) / n - 1
    rows = theta[:, None, :, 1] * base[None, :, None] + theta[:, None, :, 2]  # (B, n, 2): y term + shift
    cols = theta[:, None, :, 0] * base[None, :, None]  # (B, n, 2): x term
    return rows[:, :, None, :] + cols[:, None, :, :]


def _resample(x: torch.Tensor, group: Sequence[Geometric], out_size: int | None, gen: torch.Generator) -> torch.Tensor:
    """Apply a run of geometric transforms (and an optional resize) as one grid_sample."""
    b, _, h, w = x.shape
    size = float(w)
    # m maps coordinates on the current canvas back to the input image, in pixels.
    m = _eye(b)
    for t in group:
        size, step = t.geometry(size, len(m), gen)
        if len(step) != len(m):  # several samples per image (Crops): crop-major, sample k of image i at k*B + i
            m = m.repeat(len(step) // len(m), 1, 1)
        m = m @ step
    if len(m) != b:
        x = x.repeat(len(m) // b, 1, 1, 1)
        b = len(m)
    n = max(1, int(round(size))) if out_size is None else out_size
    # Output-normalized [-1, 1] -> output pixels -> input pixels -> input-normalized [-1, 1].
    to_pixels = torch.tensor([[size / 2, 0, size / 2], [0, size / 2, size / 2], [0, 0, 1]], dtype=torch.float64)
    to_norm = torch.tensor([[2 / w, 0, -1], [0, 2 / h, -1], [0, 0, 1]], dtype=torch.float64)
    theta = to_device((to_norm @ m @ to_pixels)[:, :2, :], x.device, x.dtype)  # no wait on the device
    grid = affine_grid(theta, n)
    fill, mode = _fill_and_mode(group)
    if mode == "zeros":
        return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=mode, align_corners=False)


def compose(transforms: Sequence[Transform], out_size: int | None = None,
            views: int = 1) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Chain transforms into one ``(images, generator) -> images`` closure.

    Consecutive geometric transforms are fused into a single resampling; ``out_size``
    resizes the result (the model's input size) within that same resampling. With ``views``
    above 1 every image is transformed that many times, each with its own random draw
    (view-major: view k of image i at ``k * B + i``, as ``Crops`` orders its crops).
    """
    stages: list[list[Geometric] | PixelFn] = []
    for t in transforms:
        if hasattr(t, "geometry"):
            if not stages or not isinstance(stages[-1], list):
                stages.append([])
            stages[-1].append(t)  # type: ignore[union-attr]
        else:
            stages.append(t)  # type: ignore[arg-type]
    last_geo = max((i for i, s in enumerate(stages) if isinstance(s, list)), default=-1)
    scheduled = [t for t in transforms if hasattr(t, "set_progress")]

    def apply(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if views > 1:
            x = x.repeat(views, 1, 1, 1)
        for i, stage in enumerate(stages):
            if isinstance(stage, list):
                x = _resample(x, stage, out_size if i == last_geo else None, gen)
            else:
                x = stage(x, gen)
        if last_geo == -1 and out_size is not None and x.shape[-1] != out_size:
            x = F.interpolate(x, size=(out_size, out_size), mode="bilinear", align_corners=False)
        return x

    def set_progress(progress: float) -> None:
        """Tell scheduled transforms (Crops) where the optimization is, 0 (first step) to 1 (last)."""
        for t in scheduled:
            t.set_progress(progress)

    apply.set_progress = set_progress  # type: ignore[attr-defined]
    return apply
