"""An example generator for ``param.type: generator`` (configs/generator.yaml).

A small up-convolution network, latent (batch, latent_size) -> images (batch, 3, 64, 64)
in [-1, 1], with SEEDED RANDOM weights: it is not trained, so it shows the mechanism,
not a learned prior. Point ``param.generator.python`` (or ``checkpoint``, a TorchScript
file) at your own trained generator (a GAN generator, a VAE decoder, ...).
"""
from __future__ import annotations

import torch
import torch.nn as nn


def build(latent_size: int = 64, seed: int = 0) -> nn.Module:
    """The example generator with weights drawn from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Linear(latent_size, 128 * 4 * 4),
            nn.Unflatten(1, (128, 4, 4)),
            nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1),  # 8 x 8
            nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),  # 16 x 16
            nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1),  # 32 x 32
            nn.ReLU(),
            nn.ConvTranspose2d(16, 3, 4, stride=2, padding=1),  # 64 x 64
            nn.Tanh(),
        )
