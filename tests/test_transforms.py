"""transforms.py: seeded determinism, Lucid-compatible geometry, one fused resampling, MACO's crops and noise."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from featviz_cli import transforms as tf
from featviz_cli.config import standard_transforms
from featviz_cli.recipe import transform_of
from featviz_cli.transforms import Crops, Jitter, Noise, Pad, Rotate, Scale, compose


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _img(b: int = 2, n: int = 16) -> torch.Tensor:
    return torch.rand(b, 3, n, n, generator=_gen(9))


def _lucid() -> list[tf.Transform]:
    """Lucid's standard transforms (pad 12, jitter 8, scale, rotate, jitter 4), as the recipe builds them."""
    return [transform_of(t) for t in standard_transforms()]


def test_same_generator_state_same_output() -> None:
    f = compose(_lucid(), out_size=32)
    x = _img()
    assert torch.equal(f(x, _gen(5)), f(x, _gen(5)))
    assert not torch.equal(f(x, _gen(5)), f(x, _gen(6)))


def test_each_image_gets_its_own_draw() -> None:
    f = compose([Jitter(6), Rotate(tuple(range(-30, 31)))])
    x = _img(1).repeat(8, 1, 1, 1)
    y = f(x, _gen(1))
    assert len({tuple(v.flatten()[:50].tolist()) for v in y}) > 1


def test_pad_constant_fill_and_size() -> None:
    y = compose([Pad(3, "constant", 0.5)])(_img(1, 8), _gen())
    assert y.shape[-1] == 14
    assert torch.allclose(y[..., 0, :], torch.full_like(y[..., 0, :], 0.5))
    assert torch.allclose(y[..., 3:11, 3:11], _img(1, 8), atol=1e-6)


def test_jitter_is_an_exact_integer_crop() -> None:
    x = _img(1, 12)
    y = compose([Jitter(4)])(x, _gen(2))
    assert y.shape[-1] == 8
    crops = [x[..., i:i + 8, j:j + 8] for i in range(5) for j in range(5)]
    assert any(torch.allclose(y, c, atol=1e-5) for c in crops)


def test_identity_scale_and_rotation_keep_the_image() -> None:
    x = _img(1, 10)
    y = compose([Scale((1.0,)), Rotate((0.0,))])(x, _gen())
    assert torch.allclose(y, x, atol=1e-5)


def test_rotate_by_90_matches_rot90() -> None:
    x = _img(1, 9)
    y = compose([Rotate((90.0,))])(x, _gen())
    assert any(torch.allclose(y, torch.rot90(x, k, dims=(2, 3)), atol=1e-5) for k in (1, 3))


def test_resize_fused_matches_bilinear_interpolate() -> None:
    x = _img(1, 8)
    y = compose([Scale((1.0,))], out_size=16)(x, _gen())
    ref = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(y, ref, atol=1e-5)


def test_no_transforms_still_resizes() -> None:
    y = compose([], out_size=20)(_img(1, 8), _gen())
    assert y.shape[-1] == 20


def test_pixel_callable_in_the_chain() -> None:
    def invert(x: torch.Tensor, _g: torch.Generator) -> torch.Tensor:
        return 1 - x

    x = _img(1, 8)
    y = compose([Pad(1), invert, Pad(1)])(x, _gen())
    assert y.shape[-1] == 12
    assert torch.allclose(y[..., 2:10, 2:10], 1 - x, atol=1e-5)


def test_gradient_flows_through() -> None:
    x = _img(1, 16).requires_grad_(True)
    compose(_lucid(), out_size=24)(x, _gen()).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("n", [1, 7, 64])
def test_affine_grid_matches_torch(n: int) -> None:
    theta = torch.randn(3, 2, 3, generator=torch.Generator().manual_seed(n))
    want = F.affine_grid(theta, [3, 1, n, n], align_corners=False)
    got = tf.affine_grid(theta, n)
    assert got.shape == want.shape and got.is_contiguous()
    assert torch.allclose(got, want, atol=1e-6)


def test_crops_are_crop_major_and_shrink_with_progress() -> None:
    x = torch.arange(2.0).view(2, 1, 1, 1).expand(2, 3, 16, 16).contiguous()
    f = compose([Crops(count=3, box_start=0.5, box_end=0.05)], out_size=8)
    y = f(x, _gen())
    assert y.shape == (6, 3, 8, 8)
    assert [float(v) for v in y.mean((1, 2, 3))] == pytest.approx([0, 1, 0, 1, 0, 1])
    crops = Crops(count=1)
    assert crops.box() == 0.5
    f = compose([crops])
    f.set_progress(1.0)
    assert crops.box() == pytest.approx(0.05)


def test_crops_stay_inside_the_image() -> None:
    ramp = torch.linspace(0, 1, 64).expand(1, 3, 64, 64).contiguous()
    y = compose([Crops(count=50, box_start=0.3, box_end=0.3)], out_size=16)(ramp, _gen(3))
    assert y.min() >= 0 and y.max() <= 1
    widths = y[:, 0, 0, -1] - y[:, 0, 0, 0]  # a crop of side s spans about s of the ramp
    assert widths.min() > 0.1 and widths.max() < 0.5


def test_noise_has_the_asked_strength() -> None:
    y = Noise(0.1)(torch.zeros(4, 3, 64, 64), _gen())
    expected = (0.1**2 + 0.1**2 / 12) ** 0.5  # normal std plus uniform(-std/2, std/2)
    assert float(y.std()) == pytest.approx(expected, rel=0.05)
def _coverage(centres: str, box: float = 0.25, draws: int = 300, grid: int = 40) -> tuple[float, float]:
    """How often the outer 10 % ring and the central 20 % square of an image fall inside a crop."""
    crops = tf.Crops(8, box, box, centres=centres)
    gen = torch.Generator().manual_seed(0)
    u = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
    hits = torch.zeros(grid, grid, dtype=torch.float64)
    for _ in range(draws):
        _, m = crops.geometry(1.0, 1, gen)
        x0, y0, side = m[:, 0, 2], m[:, 1, 2], m[:, 0, 0]
        inside_x = (u >= x0[:, None]) & (u <= (x0 + side)[:, None])
        inside_y = (u >= y0[:, None]) & (u <= (y0 + side)[:, None])
        hits += (inside_y[:, :, None] & inside_x[:, None, :]).double().sum(0)
    ring, mid = (u < 0.1) | (u > 0.9), (u > 0.4) & (u < 0.6)
    return float(hits[ring[:, None] | ring[None, :]].mean()), float(hits[mid[:, None] & mid[None, :]].mean())


def test_uniform_crop_centres_reach_the_edges() -> None:
    edge, centre = _coverage("uniform")
    assert edge > 0.5 * centre
    edge, centre = _coverage("normal")  # Xplique's and Horama's N(0.5, 0.15): the edges are hardly ever seen
    assert edge < 0.05 * centre
    x = torch.rand(1, 3, 20, 20, generator=_gen())
    crops = tf.compose([tf.Crops(5, 0.5, 0.5, centres="uniform")], out_size=10)(x, _gen())
    assert crops.shape == (5, 3, 10, 10)
