"""Penalties (to subtract): total variation, Lp norms, distance to a photo in pixels or in a layer's activations."""
from __future__ import annotations

from typing import Any

import torch

from .base import IMAGE, Acts, Objective, Probe, batch_mask


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


def feature_distance(layer: str, photo: torch.Tensor, name: str = "init_image") -> Objective:
    """Relative squared distance of each image's activations at ``layer`` to the photo's (a penalty; to subtract).

    ``||phi(x) - phi(photo)||^2 / ||phi(photo)||^2`` per image, with ``phi`` the untransformed
    image's activations (the engine's ``Probe``, one forward to ``layer`` each step), so the two
    maps are aligned pixel for pixel whatever the transforms do to the image the objective sees.
    The photo's activations are computed once, when the engine prepares the terms (Hamblin et al.
    2024, feature accentuation). ``photo``: (1, 3, H, W) in [0, 1].
    """
    state: dict[str, Any] = {}

    def prepare(probe: Probe) -> None:
        with torch.no_grad():
            ref = probe(photo, [layer])[layer].float()
        state.update(probe=probe, ref=ref, norm=ref.pow(2).flatten(1).sum(-1).clamp_min(1e-12), last=None)

    def fn(acts: Acts) -> torch.Tensor:
        if "probe" not in state:
            raise RuntimeError("feature_distance needs prepare(probe) before its first call")
        x = acts[IMAGE]
        if state["last"] is None or state["last"][0] is not x:  # once per step, however many crop groups
            features = state["probe"](x, [layer])[layer].float()
            state["last"] = (x, (features - state["ref"]).pow(2).flatten(1).sum(-1) / state["norm"])
        return state["last"][1]

    return Objective(fn, layers=[IMAGE, layer], description=f"L2({layer}(image) - {layer}({name}))", prepare=prepare)
