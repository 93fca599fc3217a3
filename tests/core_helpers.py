"""Helpers shared by the tests of the core modules: generators, the subprocess environment,
an independent Gaussian blur, and the untransformed value of an objective on an image."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

import featviz_cli
from featviz_cli import engine
from featviz_cli import objectives as obj
from featviz_cli import transforms as tf
from featviz_cli.config import ParamSpec
from featviz_cli.engine import Optimized
from featviz_cli.hooks import forward_to
from featviz_cli.models import ModelInfo
from featviz_cli.models.preprocess import Preprocess
from featviz_cli.recipe import Recipe, Transform, image_param
from featviz_cli.runtime import Execution

CPU = torch.device("cpu")
ROOT = Path(featviz_cli.__file__).resolve().parent.parent


def gen(seed: int = 0) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def subprocess_env() -> dict[str, str]:
    """The environment for CLI subprocesses: this checkout first on PYTHONPATH, no forced colour/terminal."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    env["NO_COLOR"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def reference_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A Gaussian blur written out plainly in numpy: a 2-D kernel (radius ceil(3 sigma), at least 1)
    applied as a sum of shifted copies of the reflect-padded image. Slow and obvious, for comparisons."""
    radius = max(1, int(np.ceil(3 * sigma)))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma**2))
    kernel /= kernel.sum()
    a = x.detach().double().numpy()
    padded = np.pad(a, [(0, 0), (0, 0), (radius, radius), (radius, radius)], mode="reflect")
    h, w = a.shape[-2:]
    out = np.zeros_like(a)
    for i, dy in enumerate(offsets):
        for j, dx in enumerate(offsets):
            out += kernel[i, j] * padded[..., radius + dy:radius + dy + h, radius + dx:radius + dx + w]
    return torch.from_numpy(out).to(x.dtype)


def energy_by_frequency(x: torch.Tensor, lo: float, hi: float) -> float:
    """The summed power of ``x``'s 2-D spectrum at frequencies (cycles per pixel) in [lo, hi)."""
    h, w = x.shape[-2:]
    f = torch.sqrt(torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.fftfreq(w)[None, :] ** 2)
    power = torch.fft.fft2(x.detach().double()).abs() ** 2
    return float(power[..., (f >= lo) & (f < hi)].sum())


def untransformed_value(model: nn.Module, info: ModelInfo, objective: obj.Objective,
                        images: torch.Tensor) -> torch.Tensor:
    """The objective's per-image values on ``images`` as they are: resized to the model's input and
    preprocessed, no transforms, in fp32 (as the engine evaluates the final image)."""
    x = nn.functional.interpolate(images.detach().float(), size=(info.input_size, info.input_size),
                                  mode="bilinear", align_corners=False)
    with torch.no_grad():
        acts = forward_to(model.eval(), Preprocess(info)(x), [n for n in objective.layers if n != obj.IMAGE])
    acts[obj.IMAGE] = images.detach()
    return objective(acts).float()


def transform_noise(model: nn.Module, info: ModelInfo, objective: obj.Objective, images: torch.Tensor,
                    transform: Transform, draws: int = 8) -> torch.Tensor:
    """Per image, how far the objective moves between random transforms of the same images (max - min)."""
    with torch.no_grad():
        v = torch.stack([objective(forward_to(model, Preprocess(info)(transform(images, gen(100 + seed))),
                                              list(objective.layers))) for seed in range(draws)])
    return v.amax(0) - v.amin(0)


def optimized(model: nn.Module, info: ModelInfo, objective: obj.Objective, plain: obj.Objective, batch: int,
              steps: int = 24, lr: float = 0.2) -> tuple[torch.Tensor, Optimized, torch.Tensor]:
    """Optimize ``objective`` with jitter; also ``plain``'s values on the untransformed initial images and
    how much random transforms alone move ``plain`` there."""
    g = gen()
    image = image_param(ParamSpec(size=16), batch, g, CPU)
    transform = tf.compose([tf.Jitter(2)], out_size=info.input_size)
    start = untransformed_value(model, info, plain, image())
    noise = transform_noise(model, info, plain, image().detach(), transform)
    recipe = Recipe(objective=objective, image=image, transform=transform, penalties=None, generator=g, steps=steps,
                    lr=lr)
    return start, engine.optimize(model, info, recipe, Execution(CPU)), noise


def assert_clear(change: float, start: float, noise: float) -> None:
    """A clear change: ten times what random transforms alone do, and at least 1% of the start."""
    assert change > max(10 * noise, 0.01 * abs(start)), (change, start, noise)


def assert_blur_lowers_high_frequencies(image: Any, sigma: float = 1.0) -> None:
    """``image.blur_(sigma)`` cuts the mean difference between neighbouring pixels of its raw image by 30%+."""

    def hf() -> float:
        x = image.raw().detach()
        return float((x[..., 1:] - x[..., :-1]).abs().mean())

    before = hf()
    image.blur_(sigma)
    assert hf() < 0.7 * before
