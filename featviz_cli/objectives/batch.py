"""Terms that compare the images of a batch: diversity, alignment, and the blend of two objectives."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ..hooks import channel_view
from .base import Acts, Objective, Probe


def _group_mask(b: int, group: int | None, device: torch.device) -> torch.Tensor:
    """(B, B) True where two batch elements are in the same consecutive group of ``group`` (None: one group)."""
    ids = torch.arange(b, device=device) // (group or b)
    return ids[:, None] == ids[None, :]


def gram_cosine(act: torch.Tensor) -> torch.Tensor:
    """(B, B) cosine similarities between the batch elements' Gram matrices (channels x channels) of ``act``."""
    a = channel_view(act).float()  # (B, C, S)
    grams = torch.bmm(a, a.transpose(1, 2)).flatten(1)
    grams = torch.nn.functional.normalize(grams, dim=1, eps=1e-10)
    return grams @ grams.T


def diversity(layer: str, *, group: int | None = None) -> Objective:
    """Lucid's diversity: minus the summed Gram cosine similarity of each image to the others of its group.

    Image i's value is -sum_{j != i} cos(G_i, G_j) / K for the K images of its group, so the batch
    total is minus Lucid's ``diversity(layer)``; maximizing it (weight > 0) pushes the images apart.
    """

    def fn(acts: Acts) -> torch.Tensor:
        sim = gram_cosine(acts[layer])
        b = sim.shape[0]
        same = _group_mask(b, group, sim.device) & ~torch.eye(b, dtype=torch.bool, device=sim.device)
        return -(sim * same).sum(1) / (group or b)

    where = f", groups of {group}" if group else ""
    return Objective(fn, layers=[layer], description=f"diversity {layer}{where}")


def alignment(layer: str, *, group: int | None = None, decay_ratio: float = 2.0, reach: int = 4) -> Objective:
    """Lucid's alignment: minus the mean squared difference of activations between batch elements
    1..``reach`` apart, each distance d weighted 1/decay_ratio**d (keeps interpolation frames alike).

    The penalty of a pair (i, i + d) is counted in image i's value.
    """

    def fn(acts: Acts) -> torch.Tensor:
        a = acts[layer].float().flatten(1)
        b = a.shape[0]
        same = _group_mask(b, group, a.device)
        values = torch.zeros(b, device=a.device)
        for d in range(1, min(reach, b - 1) + 1):
            idx = torch.arange(b - d, device=a.device)
            mse = (a[:-d] - a[d:]).pow(2).mean(-1) * same[idx, idx + d]
            values = values - torch.nn.functional.pad(mse, (0, d)) / decay_ratio**d
        return values

    where = f", groups of {group}" if group else ""
    return Objective(fn, layers=[layer], description=f"alignment {layer}{where}")


def frame_weights(frames: int) -> list[float]:
    """The weight of objective B in each of ``frames`` interpolation frames: 0, 1/(N-1), ..., 1."""
    return [f / (frames - 1) for f in range(frames)]


def blend(a: Objective, b: Objective, weights: Sequence[float]) -> Objective:
    """Per image i: (1 - t_i) * a + t_i * b with ``t = weights`` (interpolation frames from a to b)."""
    t_cpu = torch.tensor([float(w) for w in weights])

    def fn(acts: Acts) -> torch.Tensor:
        va, vb = a(acts), b(acts)
        t = t_cpu.to(va.device, va.dtype)
        return (1 - t) * va + t * vb

    def label(i: int) -> str:
        return f"t={float(t_cpu[i]):.2f}" if i < len(t_cpu) else ""

    def check(shapes: Mapping[str, torch.Size]) -> None:
        a.check(shapes)
        b.check(shapes)

    def prepare(probe: Probe) -> None:
        a.prepare(probe)
        b.prepare(probe)

    return Objective(fn, layers=a.layers + b.layers, labels=label, check=check, prepare=prepare,
                     description=f"interpolate({a.description} -> {b.description}, {len(t_cpu)} frames)")
