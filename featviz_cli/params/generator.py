"""Generator parameterization: optimize the latent input of a generator network (a learned image prior).

The user provides the generator, either as ``python: package.module:factory``
(featviz imports and calls it: this runs your code) or as a TorchScript file
(``checkpoint``). It takes a (batch, latent_size) tensor and returns images
(batch, 3, H, W) with values in ``output_range``. Its weights are frozen and
never handed to the optimizer: only the latent changes (as Lucent's ``param/gan.py``).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import SpecError
from ..hooks import first_tensor
from ..usercode import FactoryField, load_factory
from ._registry import register_param
from .base import ImageParam

FIELD = "param.generator"


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def load_generator(g: Mapping[str, Any]) -> nn.Module:
    """The generator that ``param.generator`` names (``python`` with ``kwargs``, or a TorchScript
    ``checkpoint``), in eval mode with frozen weights; errors name the spec field."""
    net = _from_python(g["python"], g.get("kwargs") or {}) if g.get("python") else _from_torchscript(g.get("checkpoint") or "")
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


#: How ``param.generator.python`` reads in error messages (its own wording, kept from before the
#: model and generator sources shared one importer).
PYTHON_FIELD = FactoryField(
    name=f"{FIELD}.python", error=SpecError,
    example=", e.g. 'mygen:build' for build() in mygen.py.",
    kwargs=f"{FIELD}.kwargs", call_kwargs="kwargs", returned=".",
    import_failed="run featviz from the directory that holds it or add that directory to PYTHONPATH.",
    check_callable=False, describe=_one_line,
)


def _from_python(target: str, kwargs: dict[str, Any]) -> nn.Module:
    return load_factory(target, kwargs, PYTHON_FIELD)


def _from_torchscript(path: str) -> nn.Module:
    where = f"{FIELD}.checkpoint"
    p = Path(path).expanduser()
    if not p.is_file():
        raise SpecError(where, f"{p}: no such file; give a TorchScript file saved with torch.jit.save.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(p), map_location="cpu")
    except Exception as e:  # noqa: BLE001 - torch raises many types for damaged files
        raise SpecError(where, f"{p} is not a readable TorchScript file ({_one_line(e)}); save it with torch.jit.save.") from None


class GeneratorImage(ImageParam):
    """Images ``generator(latent)`` mapped from ``output_range`` to [0, 1] and resized to ``size``."""

    def __init__(self, net: nn.Module, batch: int, size: int, *, latent_size: int,
                 output_range: tuple[float, float] = (-1.0, 1.0), init_sd: float = 1.0,
                 generator: torch.Generator, device: torch.device) -> None:
        super().__init__(decorrelate=False, output="clamp")
        self.net = net.to(device)
        self.size = size
        self.lo, self.hi = output_range
        latent = torch.randn((batch, latent_size), generator=generator) * init_sd
        self.latent = latent.to(device).requires_grad_(True)
        self.params = [self.latent]
        with torch.no_grad():
            self._generate()  # fail now, with the field named, if the generator does not fit

    def _generate(self) -> torch.Tensor:
        try:
            out = first_tensor(self.net(self.latent))
        except Exception as e:  # noqa: BLE001 - the user's network may raise anything
            raise SpecError(f"{FIELD}.latent_size", f"the generator failed on a latent of shape "
                                                    f"{tuple(self.latent.shape)} ({_one_line(e)}); check latent_size.") from None
        if out is None or out.dim() != 4 or out.shape[0] != self.latent.shape[0] or out.shape[1] != 3:
            shape = None if out is None else tuple(out.shape)
            raise SpecError(FIELD, f"the generator returned {shape}; it must return images (batch, 3, H, W).")
        return out

    def __call__(self) -> torch.Tensor:
        img = (self._generate().float() - self.lo) / (self.hi - self.lo)
        if img.shape[-2:] != (self.size, self.size):
            img = F.interpolate(img, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        # Straight-through clamp: in range, with gradients at the bounds (as to_valid_rgb's clamp).
        return img + (img.clamp(0, 1) - img).detach()

    def raw(self) -> torch.Tensor:
        return self()

    def blur_(self, sigma: float) -> None:
        raise NotImplementedError("a generator image cannot be blurred; set regularizers.blur_every: 0")


def _describe(o: Mapping[str, Any]) -> str:
    g = o.get("generator")
    src = (g.get("python") or g.get("checkpoint")) if g else "?"
    return f"generator({src}, latent {g['latent_size'] if g else '?'}), {o['size']}px"


@register_param("generator", describe=_describe)
def build_generator(o: Mapping[str, Any], batch: int, generator: torch.Generator, device: torch.device) -> GeneratorImage:
    """A ``GeneratorImage`` from the ``param:`` options (``param.generator`` names the network)."""
    g = o["generator"]
    lo, hi = g["output_range"]
    return GeneratorImage(load_generator(g), batch, o["size"], latent_size=g["latent_size"], output_range=(lo, hi),
                          init_sd=g["init_sd"], generator=generator, device=device)
