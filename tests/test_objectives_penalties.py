"""objectives/penalties.py: total variation, Lp norms and the distance to a photo, against hand computations."""
from __future__ import annotations

from typing import Sequence

import pytest
import torch

from featviz_cli import objectives as obj
from featviz_cli.objectives import IMAGE, distance_to, lp_norm, total_variation


def _image() -> torch.Tensor:
    return torch.rand(2, 3, 5, 4, generator=torch.Generator().manual_seed(7))


def _by_hand(x: torch.Tensor, fn) -> torch.Tensor:  # noqa: ANN001 - a per-value function
    """Per image, the mean of ``fn`` over every value, written as plain loops."""
    out = []
    for img in x:
        values = [fn(float(v)) for v in img.flatten()]
        out.append(sum(values) / len(values))
    return torch.tensor(out)


def test_lp_norm_l1_and_l2_are_mean_powers_of_the_distance_to_grey() -> None:
    x = _image()
    assert torch.allclose(lp_norm(1)({IMAGE: x}), _by_hand(x, lambda v: abs(v - 0.5)), atol=1e-6)
    assert torch.allclose(lp_norm(2)({IMAGE: x}), _by_hand(x, lambda v: (v - 0.5) ** 2), atol=1e-6)
    assert torch.allclose(lp_norm(2, constant=0.2)({IMAGE: x}), _by_hand(x, lambda v: (v - 0.2) ** 2), atol=1e-6)
    assert lp_norm(2).description == "L2(image - 0.5)" and lp_norm(2).layers == (IMAGE,)
    grey = torch.full((1, 3, 4, 4), 0.5)
    assert float(lp_norm(2)({IMAGE: grey})) == 0.0


def test_total_variation_is_the_mean_neighbour_difference() -> None:
    x = _image()
    want = []
    for img in x:
        dx = sum(abs(float(img[c, i, j + 1] - img[c, i, j])) for c in range(3) for i in range(5) for j in range(3)) / 45
        dy = sum(abs(float(img[c, i + 1, j] - img[c, i, j])) for c in range(3) for i in range(4) for j in range(4)) / 48
        want.append(dx + dy)
    assert torch.allclose(total_variation()({IMAGE: x}), torch.tensor(want), atol=1e-6)
    assert torch.equal(total_variation(batch=1)({IMAGE: x})[0], torch.tensor(0.0))


def test_distance_to_a_photo() -> None:
    x, photo = _image(), _image()[:1] * 0.5
    want = torch.stack([((img - photo[0]) ** 2).mean() for img in x])
    assert torch.allclose(distance_to(photo)({IMAGE: x}), want, atol=1e-7)
    assert distance_to(photo, "cat.jpg").description == "L2(image - cat.jpg)"
    assert float(distance_to(x[1:])({IMAGE: x[1:]})) == pytest.approx(0.0)


# ---------------------------------------------------------------- feature accentuation and the rest of the issue-12 pieces

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
    assert torch.allclose(got, want) and float(got[0].detach()) < 1e-10 < float(got[1].detach())
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
