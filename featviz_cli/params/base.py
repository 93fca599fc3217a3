"""What every image parameterization shares: the ``ImageParam`` interface, colour, frequencies, blur.

A parameterization is an ``ImageParam``: ``.params`` for the optimizer, calling it
returns a (B, 3, H, W) image in [0, 1], ``.blur_(sigma)`` smooths it in place.
Constants follow Lucid (``lucid/optvis/param/spatial.py`` and ``color.py``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..runtime import to_device

# Square root of the ImageNet colour covariance (Lucid's color_correlation_svd_sqrt).
_COLOR_CORRELATION_SVD_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float32
)
_MAX_NORM_SVD_SQRT = float(_COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max())
COLOR_CORRELATION_NORMALIZED = _COLOR_CORRELATION_SVD_SQRT / _MAX_NORM_SVD_SQRT
COLOR_MEAN = (0.48, 0.46, 0.41)


class ImageParam:
    """Base class: ``params`` to optimize and ``__call__`` rendering them as an image in [0, 1]."""

    params: list[torch.Tensor]

    def __init__(self, decorrelate: bool, output: str) -> None:
        self.decorrelate = decorrelate
        self.output = output

    def raw(self) -> torch.Tensor:
        """The (B, 3, H, W) image before colour decorrelation and the output nonlinearity."""
        raise NotImplementedError

    def __call__(self) -> torch.Tensor:
        return to_valid_rgb(self.raw(), decorrelate=self.decorrelate, output=self.output)

    def blur_(self, sigma: float) -> None:
        """Gaussian-blur the image in place (a frequency penalty applied every N steps)."""
        raise NotImplementedError

    def load_raw_(self, raw: torch.Tensor) -> None:
        """Set the parameters so that ``raw()`` returns ``raw`` (B, 3, H, W) (start from a photo)."""
        raise NotImplementedError(f"{type(self).__name__} cannot start from an image")


def to_valid_rgb(t: torch.Tensor, *, decorrelate: bool, output: str) -> torch.Tensor:
    """Map raw parameters to RGB in [0, 1]: optional colour decorrelation, then sigmoid or clamp."""
    if decorrelate:
        t = _mix_colours(t, _on_device(COLOR_CORRELATION_NORMALIZED, t.device, t.dtype))
    if output == "sigmoid":
        return torch.sigmoid(t)
    mean = _on_device(torch.tensor(COLOR_MEAN if decorrelate else (0.5, 0.5, 0.5)), t.device, t.dtype)
    t = t + mean.view(1, 3, 1, 1)
    # Straight-through clamp: values stay in range, gradients still flow at the bounds (Lucid's
    # constrain_L_inf plays the same role), so saturated pixels can come back.
    return t + (t.clamp(0, 1) - t).detach()


def _mix_colours(t: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Per pixel, colour ``d`` of the result is ``sum_c matrix[d, c] * t[:, c]`` (t: B, 3, H, W)."""
    b, c, h, w = t.shape
    # A (3, 3) @ (B, 3, H*W) product reads the image in place; einsum would permute and copy it.
    return torch.matmul(matrix, t.reshape(b, c, h * w)).view(b, matrix.shape[0], h, w)


def from_valid_rgb(img: torch.Tensor, *, decorrelate: bool, output: str, eps: float = 1e-3) -> torch.Tensor:
    """The inverse of ``to_valid_rgb``: the raw values whose image is ``img`` (B, 3, H, W) in [0, 1].

    With a sigmoid output, values are first clipped to [eps, 1 - eps] (a logit of 0 or 1 is infinite),
    so pure black and white come back as 0.001 and 0.999.
    """
    img = img.float()
    if output == "sigmoid":
        t = torch.logit(img.clamp(eps, 1 - eps))
    else:
        mean = torch.tensor(COLOR_MEAN if decorrelate else (0.5, 0.5, 0.5), device=img.device)
        t = img - mean.view(1, 3, 1, 1)
    if decorrelate:
        inv = torch.linalg.inv(COLOR_CORRELATION_NORMALIZED.double()).float().to(img.device)
        t = _mix_colours(t, inv)
    return t


_PLACED: dict[tuple[tuple[float, ...], torch.device, torch.dtype], torch.Tensor] = {}


def _on_device(t: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A small constant on ``device``, copied there once (no host-to-device copy every step)."""
    key = (tuple(t.flatten().tolist()), device, dtype)
    if key not in _PLACED:
        _PLACED[key] = to_device(t, device, dtype).view(t.shape)
    return _PLACED[key]


def rfft2d_freqs(h: int, w: int) -> torch.Tensor:
    """Frequency magnitude of each rfft2 coefficient for an h x w image, shape (h, w//2+1)."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (B, C, H, W) tensor with reflect padding."""
    radius = max(1, int(math.ceil(3 * sigma)))
    coords = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
