"""Preprocessing as the model's metadata says: an image in [0, 1] becomes the network's input."""
from __future__ import annotations

import torch
import torch.nn as nn

from .info import ModelInfo


class Preprocess(nn.Module):
    """Image in [0, 1] -> the network's input: rescale to ``value_range``, then normalize."""

    def __init__(self, info: ModelInfo) -> None:
        super().__init__()
        lo, hi = info.value_range
        mean = torch.tensor(info.mean).view(1, 3, 1, 1)
        std = torch.tensor(info.std).view(1, 3, 1, 1)
        # (lo + x * (hi - lo) - mean) / std == x * a + b
        self.register_buffer("a", (hi - lo) / std)
        self.register_buffer("b", (lo - mean) / std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.b, x, self.a)  # x * a + b in one pass
