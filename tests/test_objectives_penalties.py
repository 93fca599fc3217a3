"""Penalties: the distance to a photo in a layer's activations (feature accentuation)."""
from __future__ import annotations

from typing import Sequence

import pytest
import torch

from featviz_cli import objectives as obj


class CountingProbe:
    """A probe over a fixed random conv 'layer': counts how often it runs and on what."""

    def __init__(self) -> None:
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.calls: list[torch.Tensor] = []

    def __call__(self, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        self.calls.append(images)
        return {name: self.conv(images) for name in layers}


def test_feature_distance_is_the_relative_distance_with_the_photo_read_once() -> None:
    gen = torch.Generator().manual_seed(0)
    photo = torch.rand(1, 3, 8, 8, generator=gen)
    probe = CountingProbe()
    penalty = 3.0 * obj.feature_distance("f", photo)
    assert "f" in penalty.layers and obj.IMAGE in penalty.layers
    with pytest.raises(RuntimeError, match="prepare"):
        penalty({obj.IMAGE: photo})
    penalty.prepare(probe)
    assert len(probe.calls) == 1 and probe.calls[0] is photo
    images = torch.cat([photo, torch.rand(1, 3, 8, 8, generator=gen)]).requires_grad_(True)
    got = penalty({obj.IMAGE: images})
    with torch.no_grad():
        ref, cur = probe.conv(photo), probe.conv(images)
    want = 3.0 * (cur - ref).pow(2).flatten(1).sum(-1) / ref.pow(2).sum()
    assert torch.allclose(got, want) and float(got[0]) < 1e-10 < float(got[1])
    again = penalty({obj.IMAGE: images})  # a second group of crops in the same step: no second forward
    assert len(probe.calls) == 2 and torch.equal(again, got)
    got.sum().backward()
    assert images.grad is not None and float(images.grad[1].abs().sum()) > 0


def test_prepare_reaches_every_term_of_the_algebra() -> None:
    seen: list[str] = []
    a = obj.Objective(lambda acts: torch.zeros(1), description="a", prepare=lambda p: seen.append("a"))
    b = obj.Objective(lambda acts: torch.zeros(1), description="b", prepare=lambda p: seen.append("b"))
    (2 * (a - b) + 1.0).prepare(lambda images, layers: {})
    obj.blend(a, b, [0.0, 1.0]).prepare(lambda images, layers: {})
    assert seen == ["a", "b", "a", "b"]
