"""The spec as data: typed dataclasses with their defaults, help texts and limits.

All defaults live here. One field declaration drives validation (``coerce``), ``--set``
(``load``), the JSON Schema (``schema``) and ``meta.json`` (``spec_to_dict``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

# Lucid's standard transformation-robustness set (lucid/optvis/transform.py).
STANDARD_SCALES: list[float] = [1 + (i - 5) / 50 for i in range(11)]
STANDARD_ANGLES: list[float] = [float(a) for a in list(range(-10, 11)) + 5 * [0]]


def _f(default: Any = dataclasses.MISSING, *, help: str = "", factory: Any = None, **limits: Any) -> Any:
    """A dataclass field with a help text and optional limits (``ge``, ``gt``, ``le``, ``min_items``)."""
    meta = {"help": help, **limits}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelSpec:
    """Which network to visualize and how to load it."""

    name: str = _f("efficientnet_lite0", help="Registered model name, 'torchvision/<arch>' or 'timm/<name>'.")
    weights: str | None = _f(
        None,
        help="Weights: torchvision weights name (DEFAULT, IMAGENET1K_V1, ...) or 'none' for random weights; "
        "default: the model's pretrained weights.",
    )
    checkpoint: str | None = _f(None, help="Local file: a state dict for the named architecture, or a TorchScript file.")
    python: str | None = _f(
        None, help="'package.module:factory' returning an nn.Module. Runs your own code."
    )
    pretrained: bool = _f(True, help="timm models: load pretrained weights (needs internet the first time).")
    trust_checkpoint: bool = _f(
        False,
        help="Allow a full pickle load of the checkpoint (runs code inside the file). Only for files you trust.",
    )
    kwargs: dict[str, Any] = _f(factory=dict, help="Keyword arguments for the model constructor or factory.")
    input_size: int | None = _f(None, help="Override the model's native input size (pixels).", gt=0)
    mean: list[float] | None = _f(None, help="Override the normalization mean (3 values, on the value_range scale).")
    std: list[float] | None = _f(None, help="Override the normalization std (3 values, on the value_range scale).")
    value_range: list[float] | None = _f(None, help="Override the pixel value range fed to the network, e.g. [0, 255].")


@dataclass
class ObjectiveSpec:
    """One term of the objective. Terms are summed, each times its ``weight``."""

    type: Literal[
        "neuron", "channel", "layer", "deepdream", "logit", "probability", "direction", "diversity", "alignment"
    ] = _f(
        "channel",
        help="What to maximize. diversity: push the batch's images apart (Gram matrices of 'layer'); "
        "alignment: keep neighbouring batch elements' activations at 'layer' close (for interpolation).",
    )
    layer: str | list[str] | None = _f(
        None,
        help="Module name as model.named_modules() gives it; logit/probability default to the model output. "
        "'featviz sweep' also takes a list of layers.",
    )
    unit: int | str | None = _f(
        None, help="Channel/neuron index, or a class index or class name for logit/probability."
    )
    units: list[int | str] | str | None = _f(
        None,
        help="Several units: one batch element each (instead of 'unit'). 'featviz sweep' also takes 'all' "
        "or a range 'start:stop' (stop excluded, e.g. '0:64'). direction: rows of the vector_file matrix.",
    )
    x: int | None = _f(None, help="neuron: spatial column (default: centre).", ge=0)
    y: int | None = _f(None, help="neuron: spatial row (default: centre).", ge=0)
    weight: float = _f(1.0, help="Multiplier of this term; negative to minimize.")
    batch: int | None = _f(None, help="Apply this term to one batch element only (default: all).", ge=0)
    vector: list[float] | None = _f(None, help="direction: the vector in activation space (one value per channel).")
    vector_file: str | None = _f(
        None,
        help="direction: .npy, .pt or .safetensors file holding the vector; or a dictionary, an N x C matrix with "
        "one direction per row, whose rows 'unit' or 'units' choose ('featviz sweep' with units: all renders "
        "every row).",
    )
    vector_key: str | None = _f(
        None, help="direction: the tensor of a vector_file holding several (a state dict, a safetensors file), "
        "e.g. W_dec.",
    )
    random_seed: int | None = _f(None, help="direction: a seeded random unit-norm direction.")
    cossim_pow: float = _f(0.0, help="direction: multiply the dot product by cossim**cossim_pow (Lucid direction_neuron).", ge=0)
    group: int | None = _f(
        None,
        help="diversity/alignment: apply within consecutive groups of this many batch elements "
        "(e.g. 4 for four diverse images per unit); default: the whole batch.",
        ge=2,
    )


@dataclass
class GeneratorSpec:
    """A generator network whose latent input is optimized (a learned image prior); its weights never change."""

    latent_size: int = _f(help="Length of the latent vector the generator takes: input shape (batch, latent_size).", ge=1)
    python: str | None = _f(None, help="'package.module:factory' returning the generator nn.Module. Runs your own code.")
    checkpoint: str | None = _f(None, help="A TorchScript file holding the generator (instead of 'python').")
    kwargs: dict[str, Any] = _f(factory=dict, help="Keyword arguments for the factory.")
    output_range: list[float] = _f(
        factory=lambda: [-1.0, 1.0], help="Value range of the generator's output images, e.g. [-1, 1] (tanh) or [0, 1]."
    )
    init_sd: float = _f(1.0, help="Standard deviation of the random initial latent.", ge=0)


@dataclass
class ParamSpec:
    """How the image is parameterized."""

    type: Literal["fft", "pixel", "cppn", "generator", "maco"] = _f(
        "fft",
        help="fft: Fourier basis scaled by 1/f**decay_power; pixel: raw pixels; cppn: a compositional "
        "pattern-producing network of the pixel coordinates; generator: the latent of your generator network; "
        "maco: Fourier phase only, magnitude fixed to a natural-image spectrum (Fel et al. 2023).",
    )
    size: int = _f(128, help="Image height and width in pixels.", ge=8, le=4096)
    batch: int | None = _f(None, help="Images per optimization; default: number of units (or 1).", ge=1)
    decay_power: float = _f(
        1.5, help="fft: spectrum scale exponent. 1.5 (with lr 0.02) is as transferable at 128 steps as Lucid's "
        "1.0 (lr 0.05) at 512, with a fifth of the fine high-frequency texture (QUALITY.md).", ge=0)
    sd: float = _f(0.01, help="Standard deviation of the random initial parameters.", gt=0)
    decorrelate: bool = _f(True, help="Decorrelated colour space (Lucid's colour SVD).")
    output: Literal["sigmoid", "clamp"] = _f("sigmoid", help="How values are mapped into [0, 1].")
    init_image: str | None = _f(
        None,
        help="fft/pixel: start from this photo (resized and centre-cropped to 'size'): the first image equals it "
        "(DeepDream on a photo, feature accentuation).",
    )
    spectrum: str | None = _f(
        None, help="maco: magnitude spectrum file written by 'featviz spectrum DIR -o spectrum.pt'; default: 1/f."
    )
    cppn_layers: int = _f(8, help="cppn: hidden layers (Lucid: 8).", ge=1, le=64)
    cppn_width: int = _f(24, help="cppn: channels per hidden layer (Lucid: 24).", ge=1, le=1024)
    generator: GeneratorSpec | None = _f(None, help="generator: the network and its latent (needed for type generator).")


@dataclass
class TransformSpec:
    """One transformation-robustness step applied to the image before the model, every step."""

    type: Literal["pad", "jitter", "scale", "rotate", "crops", "noise"] = _f(
        help="Transform kind. crops: MACO's random multi-crop (several crops per image and step, resized to the "
        "model input); noise: Gaussian plus uniform noise."
    )
    pixels: int | None = _f(None, help="pad/jitter: amount in pixels.", ge=0)
    mode: Literal["constant", "reflect", "replicate"] = _f("constant", help="pad: fill mode.")
    value: float = _f(0.5, help="pad: constant fill value.")
    factors: list[float] | None = _f(None, help="scale: factors chosen uniformly at random.")
    degrees: list[float] | None = _f(None, help="rotate: angles in degrees chosen uniformly at random.")
    count: int | None = _f(None, help="crops: crops per image per step; the objective is averaged over them (default 32).", ge=1)
    box: list[float] | None = _f(
        None,
        help="crops: crop side as a fraction of the image side, shrinking linearly from the first value at the first "
        "step to the second at the last (default [0.5, 0.05], Xplique's MACO).",
    )
    std: float | None = _f(
        None, help="noise: standard deviation on the [0, 1] image scale (default 0.04: Xplique's 0.08 on [-1, 1]).", ge=0
    )
    centres: Literal["normal", "uniform"] | None = _f(
        None,
        help="crops: where crop centres fall. normal (default): N(0.5, 0.15) of the image side, as Xplique and "
        "Horama, so the edges are rarely optimized; uniform: anywhere, so the whole image is.",
    )


def standard_transforms() -> list[TransformSpec]:
    """Lucid's ``standard_transforms``: pad 12, jitter 8, scale 0.9-1.1, rotate -10..10, jitter 4."""
    return [
        TransformSpec(type="pad", pixels=12, mode="constant", value=0.5),
        TransformSpec(type="jitter", pixels=8),
        TransformSpec(type="scale", factors=list(STANDARD_SCALES)),
        TransformSpec(type="rotate", degrees=list(STANDARD_ANGLES)),
        TransformSpec(type="jitter", pixels=4),
    ]


@dataclass
class FeatureRegularizerSpec:
    """Feature accentuation (Hamblin et al. 2024): stay near param.init_image in a layer's activations."""

    layer: str = _f(
        help="The (earlier) layer whose activations stay near the photo's, e.g. _blocks.4; "
        "run 'featviz layers MODEL' to list names."
    )
    weight: float = _f(
        1.0,
        help="Weight of the relative squared distance ||layer(image) - layer(photo)||^2 / ||layer(photo)||^2, "
        "both without transforms (0: off).",
        ge=0,
    )


@dataclass
class RegularizerSpec:
    """Frequency penalties, subtracted from the objective."""

    tv: float = _f(0.0, help="Weight of the total variation penalty.", ge=0)
    l1: float = _f(0.0, help="Weight of the L1 penalty on (image - 0.5).", ge=0)
    l2: float = _f(0.0, help="Weight of the L2 penalty on (image - 0.5).", ge=0)
    init_l2: float = _f(0.0, help="Weight of the mean squared distance to param.init_image (stay near the photo).", ge=0)
    features: FeatureRegularizerSpec | None = _f(
        None,
        help="Stay near param.init_image in a layer's activations, not only in pixels (feature accentuation): "
        "{layer: _blocks.4, weight: 10}.",
    )
    blur_every: int = _f(0, help="Blur the image parameters every N steps (0: never).", ge=0)
    blur_sigma: float = _f(0.5, help="Gaussian blur sigma in pixels.", gt=0)


@dataclass
class OptimizerSpec:
    """The optimizer."""

    type: Literal["adam", "sgd", "sign", "nadam"] = _f(
        "adam",
        help="adam (Lucid's); sgd: plain gradient steps (L2 steepest descent); sign: L-infinity steepest descent, "
        "x -= lr * sign(gradient); nadam: Adam with Nesterov momentum (MACO: lr 1.0).",
    )
    lr: float = _f(0.02, help="Learning rate (Lucid: 0.05, with decay_power 1.0).", gt=0, le=1e6)
    schedule: Literal["constant", "cosine"] = _f(
        "constant", help="Learning rate over the steps. cosine: from lr down to lr * final_lr along a half cosine."
    )
    final_lr: float = _f(0.1, help="cosine: the last step's learning rate as a fraction of lr.", ge=0, le=1)
    warmup: int = _f(0, help="Steps over which the learning rate first rises linearly from 0 to lr.", ge=0)


@dataclass
class OutputSpec:
    """What is written, and where."""

    dir: str = _f("out", help="Output directory (created; files in it are replaced atomically).")
    grid: bool = _f(True, help="Write grid.png with all images, labelled.")
    images: bool = _f(True, help="Write one PNG per image at full resolution.")
    labels: bool = _f(True, help="Label the grid cells with the units.")
    alpha: bool = _f(
        False,
        help="Also write each image's transparency map (the MACO paper's attribution: which pixels the objective "
        "used): the input gradient |d loss / d image| summed over colour channels and accumulated over the steps, "
        "as a heat map alpha/NNN_label_heat.png and as the image with the map as its alpha channel, "
        "alpha/NNN_label_rgba.png.",
    )


#: Fields added after sweeps first recorded a spec hash (dotted paths; ``name[]`` walks every item of a
#: list). A sweep's hash leaves each out while it has its default value, so output directories made
#: before it existed still resume.
LATER_FIELDS: tuple[str, ...] = ("views", "optimizer.schedule", "optimizer.final_lr", "optimizer.warmup",
                                 "regularizers.features", "transforms[].centres",
                                 "objective[].vector_key", "sweep.techniques")

#: Default units per optimization batch of a sweep, by device type (``sweep.batch: null``).
SWEEP_BATCH_DEFAULTS: dict[str, int] = {"cpu": 16, "cuda": 64, "mps": 64}


#: Techniques of ``sweep.techniques`` named by a word: the swept term's type for each render.
UNIT_TECHNIQUES: tuple[str, ...] = ("channel", "neuron")


@dataclass
class DiverseSpec:
    """A sweep technique: K images of each unit from one optimization, pushed apart within the unit's group."""

    diverse: int = _f(help="Images per unit (K); the diversity term compares each unit's K images only.", ge=2, le=64)
    weight: float = _f(8.0, help="Weight of the diversity term (8 keeps most of the unit's activation; "
                       "see docs/techniques.md).", gt=0)
    layer: str | None = _f(None, help="Layer whose Gram matrices are pushed apart; default: the swept layer "
                           "(give one for logit/probability sweeps).")


@dataclass
class SweepSpec:
    """How 'featviz sweep' renders every unit of its layers."""

    batch: int | None = _f(
        None,
        help="Units per optimization batch, one image each; default: 16 on CPU, 64 on CUDA/MPS "
        "(or what the sweep in the output directory already uses).",
        ge=1,
        le=4096,
    )
    page_size: int = _f(64, help="Units per contact sheet and per gallery layer page.", ge=1, le=4096)
    techniques: list[Literal["channel", "neuron"] | DiverseSpec] | None = _f(
        None,
        help="Several renders of every unit, each with its own files, sha256 and contact sheets, side by side "
        "on the unit's page: channel (the channel's mean over space), neuron (the unit at one position: the "
        "term's x/y, default the centre) and {diverse: K} (K images per unit, a diversity term within each "
        "unit's group), e.g. [channel, neuron, {diverse: 4}]. Default: one render per unit, the term as given.",
        min_items=1,
    )


@dataclass
class InterpolateSpec:
    """Interpolation between the first two objective terms: frame f of N optimizes (1 - t) * A + t * B, t = f / (N - 1)."""

    frames: int = _f(8, help="Number of frames (the batch).", ge=2, le=256)
    shared: bool = _f(
        True, help="Frames share low-resolution image parameters (Lucid's neuron interpolation), so neighbours look alike."
    )
    duration_ms: int = _f(150, help="Display time of each frame in the animation, in milliseconds.", ge=10)
    pingpong: bool = _f(True, help="The animation plays A to B and back.")
    webp: bool = _f(True, help="Also write interpolation.webp (when this Pillow supports WebP).")


@dataclass
class DatasetSpec:
    """Dataset examples (``featviz examples``): the natural images that excite each unit most."""

    images: str | None = _f(
        None, help="Folder of images, searched recursively (.jpg, .jpeg, .png, .webp); or --images DIR."
    )
    layers: list[str] | None = _f(
        None, help="Layers to collect examples for; default: the objective's layers.", min_items=1
    )
    k: int = _f(8, help="Examples kept per unit (top-k by the unit's maximum over space).", ge=1, le=1000)
    bottom: bool = _f(False, help="Also keep the bottom-k: the images with the most negative minimum.")
    batch_size: int = _f(32, help="Images per forward pass.", ge=1)
    workers: int = _f(2, help="DataLoader worker processes decoding images (0: in the main process).", ge=0)
    checkpoint_every: int = _f(1000, help="Save the pass's state every N images, so a killed pass resumes.", ge=1)
    rf_mass: float = _f(
        0.9,
        help="Crop size: the square around the maximum holding this fraction of the unit's input gradient "
        "(its effective receptive field); 1.0 = every input pixel that can affect the unit.",
        gt=0,
        le=1,
    )


@dataclass
class Spec:
    """A whole single experiment."""

    model: ModelSpec = _f(factory=ModelSpec, help="The network.")
    objective: list[ObjectiveSpec] = _f(factory=list, help="Objective term, or a list of terms to sum.", min_items=1)
    param: ParamSpec = _f(factory=ParamSpec, help="Image parameterization.")
    transforms: list[TransformSpec] = _f(
        factory=standard_transforms, help="'standard' (Lucid's set), 'none', or a list of transforms."
    )
    resize_to_model: bool = _f(True, help="Resize transformed images to the model's native input size.")
    views: int = _f(
        1, help="Random transformed views of each image per step (each its own draw of the transforms); the "
        "objective is averaged over them.", ge=1, le=256,
    )
    regularizers: RegularizerSpec = _f(factory=RegularizerSpec, help="Frequency penalties.")
    optimizer: OptimizerSpec = _f(factory=OptimizerSpec, help="Optimizer.")
    steps: int = _f(512, help="Optimization steps.", ge=1)
    thresholds: list[int] = _f(factory=list, help="Steps at which to save snapshots (the last step is always saved).")
    seed: int = _f(0, help="Random seed (parameters, transforms, random directions).", ge=0)
    device: str = _f("auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = _f(
        "auto", help="Autocast of the network. auto: bf16 on CUDA (fp16 with loss scaling where bf16 is missing) "
        "and on CPUs with native bf16 (AMX / AVX-512 BF16); fp32 elsewhere.",
    )
    channels_last: bool | Literal["auto"] = _f(
        "auto", help="Run the network on channels_last tensors (faster convolutions). auto: on CUDA and CPU, not MPS."
    )
    compile: bool = _f(
        False, help="torch.compile the network truncated at the objective's layer (slow start, faster steps; "
        "falls back to eager with a note in meta.json when the model does not trace or compile).",
    )
    output: OutputSpec = _f(factory=OutputSpec, help="Outputs.")
    sweep: SweepSpec = _f(factory=SweepSpec, help="Settings of 'featviz sweep' (ignored by 'featviz render').")
    dataset: DatasetSpec = _f(factory=DatasetSpec, help="Dataset examples for 'featviz examples'.")
    name: str | None = _f(None, help="A name for this experiment, used in metadata.")
    relu_redirect: int = _f(
        16,
        help="For this many first steps, gradients also pass through ReLU/ReLU6 modules that are off, in the "
        "direction that turns them on (Lucid's redirected ReLU, 16 steps); 0: never.",
        ge=0,
    )
    interpolate: InterpolateSpec | None = _f(
        None, help="Render an interpolation from the first objective term to the second: frames, a strip and a GIF."
    )


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The resolved spec as plain data (for meta.json and for reproducing a run)."""
    return dataclasses.asdict(spec)
