"""``test_tiny``: a small registered convnet with seeded random weights.

For tests and smoke runs (like timm's ``test_*`` models): it exercises the real
registry, hooks and engine in milliseconds. Layers: ``conv1``, ``act1``, ``conv2``,
``act2``, ``conv3``, ``act3``, ``pool``, ``fc`` (10 classes named class0..class9).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from ._registry import register_model
from .info import ModelInfo

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ModelSpec

CLASS_NAMES = tuple(f"class{i}" for i in range(10))


class TinyNet(nn.Module):
    """Three 3x3 convs with ReLU (strides 1, 2, 2), global pool, a linear head."""

    def __init__(self, width: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.act2 = nn.ReLU()
        self.conv3 = nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1)
        self.act3 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.conv1(x))
        x = self.act2(self.conv2(x))
        x = self.act3(self.conv3(x))
        return self.fc(self.pool(x).flatten(1))


@register_model("test_tiny")
def test_tiny(spec: ModelSpec) -> tuple[nn.Module, ModelInfo]:
    """A TinyNet with weights from a fixed seed (``kwargs`` may set width/num_classes)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(spec.kwargs.get("seed", 0)))
        model = TinyNet(**{k: v for k, v in spec.kwargs.items() if k != "seed"})
    n = model.fc.out_features
    names = CLASS_NAMES if n == 10 else tuple(f"class{i}" for i in range(n))
    info = ModelInfo(name="test_tiny", input_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                     class_names=names, weights="seeded random", source="featviz test model")
    return model, info
