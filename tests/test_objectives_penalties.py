"""objectives/penalties.py: total variation, Lp norms and the distance to a photo, against hand computations."""
from __future__ import annotations

import pytest
import torch

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
