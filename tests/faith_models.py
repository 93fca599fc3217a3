"""A tiny network with two planted units for the faithfulness tests, and a folder of natural-looking photos.

``early`` (a conv and a ReLU, like a network's block) computes rectified colour opponents (red,
green, blue, brightness) and a checkerboard detector (2-px squares), and ``units`` (a block of one
1x1 conv) has two units:

- unit 0, **natural**: the red opponent; its render is red, and red photos drive it;
- unit 1, **planted**: the green opponent plus twice the (strong) checkerboard detector. Photos never hold a
  checkerboard, so green photos are its top examples, but its render is the checkerboard: a pattern
  off the natural distribution (Geirhos et al.'s fooling circuits plant such units on purpose).

Loaded by the sweep as ``model.python: "faith_models:planted"`` (tests/ is on sys.path).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

SPEC = {
    "model": {"python": "faith_models:planted"},
    "objective": {"type": "channel", "layer": "units", "units": "all"},
    "param": {"size": 32, "type": "pixel", "decorrelate": False},
    "transforms": "none",
    "optimizer": {"lr": 0.05},  # pinned: the planted units' renders converge in 40 steps whatever the defaults
    "steps": 40,
    "device": "cpu",
    "sweep": {"batch": 2},
}


class Planted(nn.Module):
    """Rectified colour opponents and a checkerboard detector, then two units (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.early = nn.Sequential(nn.Conv2d(3, 5, 4, padding="same", padding_mode="replicate", bias=False), nn.ReLU())
        self.units = nn.Sequential(nn.Conv2d(5, 2, 1, bias=False))
        w = torch.zeros(5, 3, 4, 4)
        opponents = torch.tensor([[1.0, -0.5, -0.5], [-0.5, 1.0, -0.5], [-0.5, -0.5, 1.0], [1 / 3, 1 / 3, 1 / 3]])
        w[:4, :, 1, 1] = opponents
        tile = torch.tensor([[1.0, 1, -1, -1], [1, 1, -1, -1], [-1, -1, 1, 1], [-1, -1, 1, 1]]) * 10 / 16
        w[4] = tile[None].expand(3, 4, 4) / 3
        u = torch.zeros(2, 5, 1, 1)
        u[0, 0] = 1.0
        u[1, 1], u[1, 4] = 1.0, 2.0
        with torch.no_grad():
            self.early[0].weight.copy_(w)
            self.units[0].weight.copy_(u)
        self.featviz_info = {"input_size": 32, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.units(self.early(x)).mean((2, 3))


def planted() -> Planted:
    """The factory the sweep's spec names."""
    return Planted()


def photos(root: Path, count: int = 15) -> list[str]:
    """``count`` smooth, natural-looking 48x48 photos (low-frequency colour fields in many hues) under ``root``."""
    rng = np.random.default_rng(7)
    hues = [(0.85, 0.2, 0.15), (0.2, 0.75, 0.2), (0.25, 0.3, 0.8), (0.5, 0.5, 0.5), (0.7, 0.6, 0.3)]
    names = []
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        base = np.array(hues[i % len(hues)]) * rng.uniform(0.6, 1.0)
        field = rng.uniform(-0.25, 0.25, (4, 4, 3))
        smooth = np.asarray(Image.fromarray(((field + 0.5) * 255).astype(np.uint8)).resize((48, 48), Image.BILINEAR),
                            dtype=float) / 255 - 0.5
        arr = np.clip(base[None, None] + smooth, 0, 1)
        name = f"photo_{i:02d}.png"
        Image.fromarray((arr * 255).astype(np.uint8)).save(root / name)
        names.append(name)
    return names
