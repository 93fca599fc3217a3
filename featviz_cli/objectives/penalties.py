"""Penalties on the image itself (to subtract): total variation, Lp norms, distance to a photo."""
from __future__ import annotations

import torch

from .base import IMAGE, Acts, Objective, batch_mask


def total_variation(*, batch: int | None = None) -> Objective:
    """Mean absolute difference between neighbouring pixels (a frequency penalty; to subtract)."""

    def fn(acts: Acts) -> torch.Tensor:
        x = acts[IMAGE]
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(-1)
        dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(-1)
        return batch_mask(dx + dy, batch)

    return Objective(fn, layers=[IMAGE], description="total_variation(image)")


def lp_norm(p: int, constant: float = 0.5) -> Objective:
    """Mean |image - constant|**p (L1 or L2 penalty; to subtract)."""

    def fn(acts: Acts) -> torch.Tensor:
        return ((acts[IMAGE] - constant).abs() ** p).flatten(1).mean(-1)

    return Objective(fn, layers=[IMAGE], description=f"L{p}(image - {constant})")


def distance_to(target: torch.Tensor, name: str = "init_image") -> Objective:
    """Mean squared distance of each image to ``target`` (1 or B, 3, H, W) (a penalty; to subtract)."""

    def fn(acts: Acts) -> torch.Tensor:
        x = acts[IMAGE]
        return (x - target.to(x.device, x.dtype)).pow(2).flatten(1).mean(-1)

    return Objective(fn, layers=[IMAGE], description=f"L2(image - {name})")
