"""The experiments of docs/techniques.md: every spec as a plain dict (the same dicts work with
``featviz_cli.render`` or as YAML), and the constants the figures quote."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MODEL = {"name": "efficientnet_lite0"}
STEPS = 256


def _spec(objective: Any, **rest: Any) -> dict[str, Any]:
    spec = {"model": MODEL, "objective": objective, "param": {"size": 128}, "steps": STEPS, "seed": 0,
            "precision": "fp32"}
    spec.update(rest)
    return spec


def _pair(param: dict[str, Any], optimizer: dict[str, Any] | None = None) -> dict[str, Any]:
    """One channel and one class, each restricted to its batch element; Adam at the default rate unless
    ``optimizer`` is given."""
    terms = [{"type": "channel", "layer": "_blocks.10", "unit": 4, "batch": 0},
             {"type": "logit", "unit": "goldfish", "batch": 1}]
    rest = {"optimizer": optimizer} if optimizer else {}
    return _spec(terms, param={"size": 128, "batch": 2, **param}, **rest)


def _diverse(weight: float) -> dict[str, Any]:
    terms = [{"type": "channel", "layer": "_blocks.10", "unit": 4}]
    if weight:
        terms.append({"type": "diversity", "layer": "_blocks.10", "weight": weight})
    return _spec(terms, param={"size": 128, "batch": 4})


def _interp(shared: bool, align: float) -> dict[str, Any]:
    terms = [{"type": "channel", "layer": "_blocks.10", "unit": 4}, {"type": "channel", "layer": "_blocks.10", "unit": 9}]
    if align:
        terms.append({"type": "alignment", "layer": "_blocks.6", "weight": align})
    return _spec(terms, interpolate={"frames": 8, "shared": shared})


DEEP = {"type": "channel", "layer": "_blocks.14", "units": [7, 31, 64, 100]}
ACCENT_WEIGHT = 10.0  # too weak with the 1/f^1.5 default: configs/accentuation.yaml uses 50 (features50)
MACO_BOX = 0.35  # crop side / canvas side: 640 * 0.35 = 224 px, the model's input
MACO_TRANSFORMS = [{"type": "crops", "count": 4, "box": [MACO_BOX, MACO_BOX], "centres": "uniform"},
                   {"type": "noise", "std": 0.04}]
HEAD = {"type": "channel", "layer": "_conv_head", "units": [640, 746, 960, 1066]}
HEAD_BOX = 0.67  # configs/maco_channels.yaml: two crops of two thirds of a 192 px canvas per step
HEAD_TRANSFORMS = [{"type": "crops", "count": 2, "box": [HEAD_BOX, HEAD_BOX], "centres": "uniform"},
                   {"type": "noise", "std": 0.04}]

EXPERIMENTS: dict[str, dict[str, Any]] = {
    # Q3: what the decorrelated space does, at equal steps (and the sign step's high frequencies)
    "param_pixel_rgb": _pair({"type": "pixel", "decorrelate": False}),
    "param_pixel_decorrelated": _pair({"type": "pixel", "decorrelate": True}),
    "param_fft_rgb": _pair({"type": "fft", "decorrelate": False}),
    "param_fft_decorrelated": _pair({"type": "fft", "decorrelate": True}),
    "param_fft_decay1": _pair({"type": "fft", "decorrelate": True, "decay_power": 1.0}),  # Lucid's 1/f
    "param_pixel_sign": _pair({"type": "pixel", "decorrelate": False}, {"type": "sign", "lr": 0.01}),
    "param_fft_sign": _pair({"type": "fft", "decorrelate": True}, {"type": "sign", "lr": 0.01}),
    **{f"param_pixel_sgd_{lr}": _pair({"type": "pixel", "decorrelate": False}, {"type": "sgd", "lr": float(lr)})
       for lr in (100, 1000, 10000)},
    # Q2: basis directions (channels) against random directions of the same layer
    "basis": _spec({"type": "channel", "layer": "_blocks.10", "units": [0, 1, 2, 3]}),
    "random": _spec([{"type": "direction", "layer": "_blocks.10", "random_seed": s, "batch": s - 1}
                     for s in (1, 2, 3, 4)], param={"size": 128, "batch": 4}),
    # Q1: diverse examples are one joint optimization of a batch
    "diversity_0": _diverse(0.0),
    "diversity_2": _diverse(2.0),
    "diversity_8": _diverse(8.0),
    "diversity_32": _diverse(32.0),
    # interpolation
    "interp_shared_align": _interp(True, 1.0),
    "interp_shared_align10": _interp(True, 10.0),
    "interp_shared_align01": _interp(True, 0.1),
    "interp_shared_align003": _interp(True, 0.03),
    "interp_shared": _interp(True, 0.0),
    "interp_free": _interp(False, 0.0),
    # MACO against the FFT default on a deep layer, equal steps (128: rendered on a CPU)
    "deep_fft": _spec(DEEP, steps=128),
    "deep_maco": _spec(DEEP, param={"type": "maco", "size": 640}, transforms=MACO_TRANSFORMS,
                       optimizer={"type": "nadam", "lr": 1.0}, steps=128, output={"alpha": True}),
    # ... and on the last layer, with the channel recipe of configs/maco_channels.yaml
    "head_fft": _spec(HEAD, steps=128),
    "head_maco": _spec(HEAD, param={"type": "maco", "size": 192}, transforms=HEAD_TRANSFORMS,
                       optimizer={"type": "nadam", "lr": 0.5}, steps=128, output={"alpha": True}),
    # CPPN
    "cppn": _spec({"type": "channel", "layer": "_blocks.8", "units": [3, 17, 42, 64]},
                  param={"type": "cppn", "size": 128}, optimizer={"type": "adam", "lr": 0.005}, steps=512),
    "cppn_fft": _spec({"type": "channel", "layer": "_blocks.8", "units": [3, 17, 42, 64]}, steps=512),
    # photos
    "photo_deepdream": _spec({"type": "deepdream", "layer": "_blocks.5"},
                             param={"size": 128, "init_image": "tests/data/chelsea.jpg"},
                             transforms=[{"type": "jitter", "pixels": 4}], steps=64),
    "photo_accent_free": _spec({"type": "logit", "unit": "goldfish"},
                               param={"size": 128, "init_image": "tests/data/coffee.jpg"}, steps=128),
    "photo_accent_held": _spec({"type": "logit", "unit": "goldfish"},
                               param={"size": 128, "init_image": "tests/data/coffee.jpg"},
                               regularizers={"init_l2": 20.0}, steps=128),
    # feature accentuation: configs/accentuation.yaml and its variants (256 px, CPU bf16 as the config runs)
    **{f"accent_{name}": _spec({"type": "logit", "unit": "tiger"},
                               param={"size": 256, "init_image": "tests/data/chelsea.jpg"}, regularizers=reg,
                               steps=128, precision="auto", output={"alpha": True})
       for name, reg in (("plain", {}), ("pixels", {"init_l2": 1000.0}),
                         ("features", {"features": {"layer": "_blocks.4", "weight": ACCENT_WEIGHT}}),
                         ("features50", {"features": {"layer": "_blocks.4", "weight": 50.0}}))},
    **{f"photo_accent_l2_{w}": _spec({"type": "logit", "unit": "goldfish"},
                                     param={"size": 128, "init_image": "tests/data/coffee.jpg"},
                                     regularizers={"init_l2": float(w)}, steps=128) for w in (200, 1000, 5000)},
    # redirected ReLU: a ReLU6 output layer whose channels are off for the grey start
    "relu_off": _spec({"type": "channel", "layer": "_blocks.12._act1", "units": list(range(8))},
                      relu_redirect=0, steps=128),
    "relu_on": _spec({"type": "channel", "layer": "_blocks.12._act1", "units": list(range(8))},
                     relu_redirect=16, steps=128),
    # ... and a block output (no ReLU after it), where the redirect should change little
    **{f"relu_block_{n}": _spec({"type": "channel", "layer": "_blocks.10", "units": list(range(8))},
                                relu_redirect=n, steps=64) for n in (0, 16)},
}


def photo(path: str, size: int) -> np.ndarray:
    """A photo of the repository as an (H, W, 3) uint8 array, loaded and sized the way renders start from it."""
    from featviz_cli.images import load_image

    return (load_image(ROOT / path, size).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
