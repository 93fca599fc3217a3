"""Streaming top-k: the best ``k`` images per unit, merged batch by batch in ``(units, k)`` buffers.

Memory is bounded by ``k`` per unit whatever the number of images: each batch is merged
into the buffers and dropped, never kept.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..hooks import channel_view

EMPTY = 2**62  # image index of an empty slot: sorts after every real image on ties


@dataclass
class Ranking:
    """The best ``k`` images so far for every unit: ``(units, k)`` values, image indices, flat positions.

    ``largest`` keeps the highest values (top-k), else the lowest (bottom-k). Ties go to the
    earlier image, so the result does not depend on batch boundaries. Empty slots (fewer
    images than ``k``) have index ``EMPTY``.
    """

    values: torch.Tensor
    index: torch.Tensor
    pos: torch.Tensor
    largest: bool = True

    @classmethod
    def empty(cls, units: int, k: int, largest: bool = True) -> "Ranking":
        """A ranking with no image yet."""
        fill = -math.inf if largest else math.inf
        return cls(torch.full((units, k), fill), torch.full((units, k), EMPTY, dtype=torch.long),
                   torch.zeros((units, k), dtype=torch.long), largest)

    @property
    def k(self) -> int:
        """Images kept per unit."""
        return self.values.shape[1]

    def merge(self, values: torch.Tensor, pos: torch.Tensor, index: torch.Tensor) -> "Ranking":
        """A new ranking with a batch added: ``values``/``pos`` are ``(B, units)``, ``index`` is ``(B,)``."""
        units = self.values.shape[0]
        new_v = values.detach().float().cpu().t()
        new_v = torch.nan_to_num(new_v, nan=-math.inf if self.largest else math.inf)
        v = torch.cat([self.values, new_v], 1)
        i = torch.cat([self.index, index.cpu().long().view(1, -1).expand(units, -1)], 1)
        p = torch.cat([self.pos, pos.cpu().long().t()], 1)
        order = torch.argsort(i, dim=1, stable=True)
        v, i, p = v.gather(1, order), i.gather(1, order), p.gather(1, order)
        order = torch.argsort(v, dim=1, descending=self.largest, stable=True)[:, : self.k]
        return Ranking(v.gather(1, order), i.gather(1, order), p.gather(1, order), self.largest)

    def state(self) -> dict[str, torch.Tensor]:
        """The buffers, for a checkpoint."""
        return {"values": self.values, "index": self.index, "pos": self.pos}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], largest: bool) -> "Ranking":
        """A ranking back from :meth:`state`."""
        return cls(state["values"], state["index"], state["pos"], largest)


def extremes(act: torch.Tensor, largest: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and unit, the max (or min) over space and its flat position: two ``(B, units)`` tensors."""
    flat = channel_view(act).float()
    return flat.max(dim=2) if largest else flat.min(dim=2)
