"""Image parameterizations: the tensors the optimizer changes, and how they become an image.

A parameterization is an ``ImageParam``: ``.params`` for the optimizer, calling it
returns a (B, 3, H, W) image in [0, 1], ``.blur_(sigma)`` smooths it in place.
Constants follow Lucid (``lucid/optvis/param/spatial.py`` and ``color.py``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import ParamSpec
from .runtime import to_device

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


class PixelImage(ImageParam):
    """Raw pixels (in the decorrelated space when ``decorrelate``)."""

    def __init__(self, batch: int, size: int, *, sd: float, decorrelate: bool, output: str,
                 generator: torch.Generator, device: torch.device) -> None:
        super().__init__(decorrelate, output)
        init = torch.randn((batch, 3, size, size), generator=generator) * sd
        self.pixels = init.to(device).requires_grad_(True)
        self.params = [self.pixels]

    def raw(self) -> torch.Tensor:
        return self.pixels

    @torch.no_grad()
    def load_raw_(self, raw: torch.Tensor) -> None:
        self.pixels.copy_(raw.expand_as(self.pixels))

    @torch.no_grad()
    def blur_(self, sigma: float) -> None:
        self.pixels.copy_(gaussian_blur(self.pixels, sigma))


class FFTImage(ImageParam):
    """Fourier coefficients scaled by 1/f**decay_power: gradient steps favour low frequencies."""

    def __init__(self, batch: int, size: int, *, sd: float, decay_power: float, decorrelate: bool,
                 output: str, generator: torch.Generator, device: torch.device) -> None:
        super().__init__(decorrelate, output)
        self.size = size
        freqs = rfft2d_freqs(size, size)
        self.freqs = freqs.to(device)
        scale = 1.0 / torch.clamp(freqs, min=1.0 / size) ** decay_power
        # Lucid divides the image by 4 (keeps the initial image away from saturation); the FFT
        # is linear, so that is folded into the spectrum's scale: one pass less each way.
        self.scale = (scale / 4.0).to(device)
        init = torch.randn((batch, 3, *freqs.shape, 2), generator=generator) * sd
        self.spectrum = init.to(device).requires_grad_(True)
        self.params = [self.spectrum]

    def raw(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        return torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho")

    @torch.no_grad()
    def load_raw_(self, raw: torch.Tensor) -> None:
        # The exact inverse of raw(): irfft2(rfft2(x)) == x for a real image x.
        spectrum = torch.fft.rfft2(raw.to(self.spectrum.device).float(), norm="ortho") / self.scale
        self.spectrum.copy_(torch.view_as_real(spectrum).expand_as(self.spectrum))

    @torch.no_grad()
    def blur_(self, sigma: float) -> None:
        # A Gaussian blur is a product with exp(-2 pi^2 sigma^2 f^2) in the Fourier domain.
        gain = torch.exp(-2 * math.pi**2 * sigma**2 * self.freqs**2)
        self.spectrum.mul_(gain[..., None])


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


def make_param(spec: ParamSpec, batch: int, generator: torch.Generator, device: torch.device) -> ImageParam:
    """Build the parameterization a spec names, with its random init drawn from ``generator``.

    With ``init_image`` the parameters are then set so that the first image is the photo.
    """
    if spec.type == "cppn":
        from .param_cppn import CPPNImage

        return CPPNImage(batch, spec.size, layers=spec.cppn_layers, width=spec.cppn_width,
                         generator=generator, device=device)
    if spec.type == "generator":
        from .param_generator import GeneratorImage, load_generator

        assert spec.generator is not None, "validated specs name a generator"
        g = spec.generator
        return GeneratorImage(load_generator(g), batch, spec.size, latent_size=g.latent_size,
                              output_range=(g.output_range[0], g.output_range[1]), init_sd=g.init_sd,
                              generator=generator, device=device)
    if spec.type == "maco":
        from .maco import MacoImage, load_magnitude

        return MacoImage(batch, spec.size, load_magnitude(spec.spectrum, spec.size), generator=generator, device=device)
    common = dict(sd=spec.sd, decorrelate=spec.decorrelate, output=spec.output, generator=generator, device=device)
    image: ImageParam
    if spec.type == "fft":
        image = FFTImage(batch, spec.size, decay_power=spec.decay_power, **common)
    else:
        image = PixelImage(batch, spec.size, **common)
    if spec.init_image is not None:
        from .images import load_image

        photo = load_image(spec.init_image, spec.size).unsqueeze(0).to(device)
        image.load_raw_(from_valid_rgb(photo, decorrelate=spec.decorrelate, output=spec.output))
    return image


def describe_param(spec: ParamSpec) -> str:
    """A one-line description of the parameterization for metadata."""
    if spec.type == "cppn":
        return f"cppn({spec.cppn_layers} layers x {spec.cppn_width}), {spec.size}px"
    if spec.type == "generator":
        g = spec.generator
        src = (g.python or g.checkpoint) if g else "?"
        return f"generator({src}, latent {g.latent_size if g else '?'}), {spec.size}px"
    if spec.type == "maco":
        return f"maco(phase only, magnitude {spec.spectrum or '1/f'}), {spec.size}px"
    kind = f"fft(decay_power={spec.decay_power})" if spec.type == "fft" else "pixel"
    colour = "decorrelated colour" if spec.decorrelate else "rgb"
    photo = f", from {spec.init_image}" if spec.init_image else ""
    return f"{kind}, {colour}, {spec.output}, {spec.size}px, sd={spec.sd}{photo}"
