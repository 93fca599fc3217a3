"""Feature inversion: make an image's activations at a layer match a photo's (Lucid's caricature).

``activation_match`` scores the whole activation tensor against a target one, as Lucid's
``dot_compare``: the dot product times a power of the cosine similarity, so that the
render is pushed in the photo's direction rather than simply to larger activations.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

from ..errors import LayerError
from ..runtime import to_device
from .base import Acts, Objective, batch_mask, fmt_number


def activation_match(layer: str, target: torch.Tensor, *, cossim_pow: float = 1.0, batch: int | None = None,
                     name: str = "photo") -> Objective:
    """dot(act, target) * max(cos(act, target), 0.1) ** cossim_pow over the whole (C, H, W) tensor.

    ``target`` is one image's activations at ``layer`` (channels first). A render whose map has
    another spatial size is compared with the target resized to it (bilinear).
    """
    eps = 1e-6
    placed: dict[tuple[tuple[int, ...], torch.device], torch.Tensor] = {}

    def fitted(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        key = (shape, device)
        if key not in placed:
            t = target.float()
            if t.dim() == 3 and tuple(t.shape[1:]) != shape[1:]:
                t = F.interpolate(t[None], size=shape[1:], mode="bilinear", align_corners=False)[0]
            placed[key] = to_device(t, device, torch.float32)
        return placed[key]

    def fn(acts: Acts) -> torch.Tensor:
        a = acts[layer].float()
        t = fitted(tuple(a.shape[1:]), a.device)
        flat, tf = a.flatten(1), t.flatten()
        dot = flat @ tf
        if cossim_pow > 0:
            cos = dot / (flat.norm(dim=1) * tf.norm() + eps)
            dot = dot * cos.clamp(min=0.1) ** cossim_pow
        return batch_mask(dot, batch)

    def check(shapes: Mapping[str, torch.Size]) -> None:
        shape = shapes[layer]
        if len(shape) != target.dim() + 1 or shape[1] != target.shape[0]:
            raise LayerError(f"caricature: the target has shape {tuple(target.shape)} but layer {layer!r} "
                             f"gives {tuple(shape[1:])}; take the target from the same layer.")

    suffix = f", cossim_pow={fmt_number(cossim_pow)}" if cossim_pow else ""
    return Objective(fn, layers=[layer], description=f"caricature {layer} ({name}{suffix})",
                     labels=lambda i: "" if batch is not None and i != batch else layer, check=check)
