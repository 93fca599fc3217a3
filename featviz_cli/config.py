"""The experiment spec: typed dataclasses, YAML loading, validation and JSON Schema.

All defaults live here. Validation happens before any model is loaded and every
error names the YAML field (``objective[1].unit``) and what would fix it.
No torch import in this module: ``featviz validate`` stays fast.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from .errors import SpecError

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
        "or a range 'start:stop' (stop excluded, e.g. '0:64').",
    )
    x: int | None = _f(None, help="neuron: spatial column (default: centre).", ge=0)
    y: int | None = _f(None, help="neuron: spatial row (default: centre).", ge=0)
    weight: float = _f(1.0, help="Multiplier of this term; negative to minimize.")
    batch: int | None = _f(None, help="Apply this term to one batch element only (default: all).", ge=0)
    vector: list[float] | None = _f(None, help="direction: the vector in activation space (one value per channel).")
    vector_file: str | None = _f(None, help="direction: .npy or .pt file holding the vector.")
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
    decay_power: float = _f(1.0, help="fft: spectrum scale exponent (Lucid: 1.0).", ge=0)
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
class RegularizerSpec:
    """Frequency penalties, subtracted from the objective."""

    tv: float = _f(0.0, help="Weight of the total variation penalty.", ge=0)
    l1: float = _f(0.0, help="Weight of the L1 penalty on (image - 0.5).", ge=0)
    l2: float = _f(0.0, help="Weight of the L2 penalty on (image - 0.5).", ge=0)
    init_l2: float = _f(0.0, help="Weight of the mean squared distance to param.init_image (stay near the photo).", ge=0)
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
    lr: float = _f(0.05, help="Learning rate.", gt=0, le=1e6)


@dataclass
class OutputSpec:
    """What is written, and where."""

    dir: str = _f("out", help="Output directory (created; files in it are replaced atomically).")
    grid: bool = _f(True, help="Write grid.png with all images, labelled.")
    images: bool = _f(True, help="Write one PNG per image at full resolution.")
    labels: bool = _f(True, help="Label the grid cells with the units.")


#: Default units per optimization batch of a sweep, by device type (``sweep.batch: null``).
SWEEP_BATCH_DEFAULTS: dict[str, int] = {"cpu": 16, "cuda": 64, "mps": 64}


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


# ---------------------------------------------------------------- loading


def _loader() -> Any:
    """A SafeLoader that also reads YAML 1.2 floats such as ``1e-3`` (YAML 1.1 reads them as strings)
    and keeps ``16:32`` a string (YAML 1.1 reads it as a base-60 integer)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    # YAML 1.1 reads 16:32 as the base-60 integer 992; YAML 1.2 (and a unit range) means the text.
    sexagesimal = ("tag:yaml.org,2002:str", re.compile(r"^[0-9]+(?::[0-9]+)+$"))
    for ch in "0123456789":
        Loader.yaml_implicit_resolvers.setdefault(ch, []).insert(0, sexagesimal)
    return Loader


def parse_yaml(text: str) -> Any:
    """Parse YAML text safely: no object tags, YAML 1.2 floats."""
    import yaml

    return yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file safely (no object tags); errors name the file and line."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("", f"{p}: no such file; check the path.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError("", f"{p}: cannot read ({e.__class__.__name__}: {e}).") from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        if isinstance(e, yaml.constructor.ConstructorError):
            raise SpecError("", f"{p}:{where}: YAML tags are not allowed ({problem}); use plain values.") from None
        raise SpecError("", f"{p}:{where}: YAML syntax error: {problem}. Fix the YAML syntax there.") from None


def load_spec(path: str | Path, overrides: list[str] | None = None, **cli: Any) -> Spec:
    """Load, override (``key.path=value`` strings and CLI keywords) and validate a spec file."""
    data = load_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError("", f"{path}: the spec must be a YAML mapping (key: value), got {_tname(data)}.")
    for item in overrides or []:
        apply_override(data, item)
    for key, value in cli.items():
        if value is not None:
            set_path(data, key, value)
    return parse_spec(data)


def apply_override(data: dict, item: str) -> None:
    """Apply one ``--set a.b.c=value`` override to a nested dict; the value is parsed as YAML."""
    import yaml

    if "=" not in item:
        raise SpecError("--set", f"{item!r} is not key.path=value (e.g. --set param.size=64).")
    key, raw = item.split("=", 1)
    try:
        value = parse_yaml(raw)
    except yaml.YAMLError:
        raise SpecError(key, f"cannot parse --set value {raw!r} as YAML.") from None
    set_path(data, key, value)


def set_path(data: dict, key: str, value: Any) -> None:
    """Set ``value`` at the dotted ``key`` (list items by index: ``objective.0.unit``).

    A missing top-level key starts from its default (so ``transforms.0.pixels`` edits the
    standard list), and a single mapping counts as a list of one (``objective.0.unit``).
    """
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise SpecError("--set", f"{key!r} is an empty key.")
    defaults = _default_data()
    top = parts[0]
    if isinstance(defaults.get(top), list) and data.get(top, "standard") == "standard" and len(parts) > 1:
        data[top] = defaults[top]
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, dict) and part.isdigit() and part not in node and i > 0:
            if part != "0":
                raise SpecError(where, f"index {part} is out of range: {'.'.join(parts[:i])} has one item.")
            if last:
                raise SpecError(where, "cannot replace the single item by index; set its keys instead.")
            continue  # a single mapping is item 0 of a list of one
        if isinstance(node, list):
            if not part.isdigit():
                if len(node) != 1:
                    raise SpecError(where, f"{'.'.join(parts[:i])} is a list; give an index (e.g. {'.'.join(parts[:i])}.0.{part}).")
                node = node[0]
            elif int(part) >= len(node):
                raise SpecError(where, f"index {part} is out of range: {'.'.join(parts[:i])} has {len(node)} item(s).")
            else:
                if last:
                    node[int(part)] = value
                    return
                node = node[int(part)]
                continue
        if not isinstance(node, dict):
            raise SpecError(where, "cannot set a key inside a non-mapping value.")
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})


def _default_data() -> dict[str, Any]:
    """The defaults of every top-level spec field, as plain data."""
    return dataclasses.asdict(Spec())


def term_path(n_terms: int, i: int) -> str:
    """How the spec names objective term ``i``: ``objective`` for one term, else ``objective[i]``."""
    return "objective" if n_terms == 1 else f"objective[{i}]"


def parse_spec(data: dict) -> Spec:
    """Validate a plain dict (from YAML) into a ``Spec``; raise ``SpecError`` naming the field."""
    data = dict(data)
    if "objective" not in data:
        raise SpecError("objective", "missing; add e.g. 'objective: {type: channel, layer: <name>, unit: 0}'.")
    terms = data.pop("objective")
    if isinstance(terms, dict):
        terms = [terms]
    if not isinstance(terms, list):
        raise SpecError("objective", f"expected a list of terms (or one mapping), got {_tname(terms)}.")
    if not terms:
        raise SpecError("objective", "needs at least 1 item (an objective term).")
    tr = data.get("transforms", "standard")
    if tr == "standard":
        data.pop("transforms", None)
    elif tr in ("none", None, False):
        data["transforms"] = []
    elif isinstance(tr, str):
        raise SpecError("transforms", f"{tr!r} is not 'standard', 'none' or a list of transforms.")
    spec = _build(Spec, data, "")
    spec.objective = [_build(ObjectiveSpec, t, term_path(len(terms), i)) for i, t in enumerate(terms)]
    _check_semantics(spec)
    return spec


def _check_semantics(spec: Spec) -> None:
    """Cross-field rules that types alone cannot express."""
    needs_layer = {"neuron", "channel", "layer", "deepdream", "direction", "diversity", "alignment"}
    needs_unit = {"neuron", "channel", "logit", "probability"}
    for i, term in enumerate(spec.objective):
        where = term_path(len(spec.objective), i)
        if term.type in needs_layer and not term.layer:
            raise SpecError(f"{where}.layer", f"required for type '{term.type}'; run 'featviz layers MODEL' to list names.")
        if term.type in needs_unit and term.unit is None and term.units is None:
            raise SpecError(f"{where}.unit", f"required for type '{term.type}' (or give 'units: [..]').")
        if term.unit is not None and term.units is not None:
            raise SpecError(f"{where}.units", "give either 'unit' or 'units', not both.")
        if term.units is not None and len(term.units) == 0:
            raise SpecError(f"{where}.units", "must not be empty.")
        if term.type not in needs_unit and (term.unit is not None or term.units is not None):
            raise SpecError(f"{where}.unit", f"type '{term.type}' takes no unit; remove it.")
        if isinstance(term.layer, list):
            _check_layer_list(term.layer, term.type, f"{where}.layer")
        ufield = f"{where}.unit" if term.units is None else f"{where}.units"
        if isinstance(term.units, str):
            parse_unit_range(term.units, ufield)
        for u in [term.unit] if term.units is None else [] if isinstance(term.units, str) else term.units:
            if isinstance(u, str) and term.type not in ("logit", "probability"):
                raise SpecError(ufield, f"must be an integer index for type '{term.type}', got {u!r}.")
            if isinstance(u, int) and u < 0:
                raise SpecError(ufield, f"must be >= 0, got {u}.")
        if term.type == "direction":
            given = [k for k in ("vector", "vector_file", "random_seed") if getattr(term, k) is not None]
            if len(given) != 1:
                raise SpecError(
                    f"{where}.vector", "direction needs exactly one of 'vector', 'vector_file' or 'random_seed'."
                )
        elif any(getattr(term, k) is not None for k in ("vector", "vector_file", "random_seed")):
            raise SpecError(f"{where}.vector", f"only type 'direction' takes a vector; type is '{term.type}'.")
        if term.type != "neuron" and (term.x is not None or term.y is not None):
            raise SpecError(f"{where}.x", f"only type 'neuron' takes x/y; type is '{term.type}'.")
    batch = batch_size(spec)
    for i, term in enumerate(spec.objective):
        where = term_path(len(spec.objective), i)
        if isinstance(term.units, list) and len(term.units) != batch:
            raise SpecError(
                f"{where}.units",
                f"has {len(term.units)} units but the batch has {batch} images; make them equal or drop param.batch.",
            )
        if term.batch is not None and term.batch >= batch:
            raise SpecError(f"{where}.batch", f"{term.batch} is out of range for a batch of {batch} (0..{batch - 1}).")
    for i, t in enumerate(spec.transforms):
        where = f"transforms[{i}]"
        if t.type in ("pad", "jitter") and t.pixels is None:
            raise SpecError(f"{where}.pixels", f"required for '{t.type}'.")
        if t.type == "scale" and not t.factors:
            raise SpecError(f"{where}.factors", "required for 'scale', e.g. [0.9, 1.0, 1.1].")
        if t.type == "scale" and any(f <= 0 for f in t.factors or []):
            raise SpecError(f"{where}.factors", "scale factors must be > 0.")
        if t.type == "rotate" and not t.degrees:
            raise SpecError(f"{where}.degrees", "required for 'rotate', e.g. [-10, 0, 10].")
    for name in ("mean", "std"):
        v = getattr(spec.model, name)
        if v is not None and len(v) != 3:
            raise SpecError(f"model.{name}", f"needs 3 values (R, G, B), got {len(v)}.")
    if spec.model.std is not None and any(s <= 0 for s in spec.model.std):
        raise SpecError("model.std", "values must be > 0.")
    vr = spec.model.value_range
    if vr is not None and (len(vr) != 2 or vr[0] >= vr[1]):
        raise SpecError("model.value_range", "needs [low, high] with low < high, e.g. [0, 255].")
    for i, s in enumerate(spec.thresholds):
        if not 1 <= s <= spec.steps:
            raise SpecError(f"thresholds[{i}]", f"{s} is outside 1..steps ({spec.steps}).")
    _check_device(spec.device)
    _check_techniques(spec, batch)


def batch_size(spec: Spec) -> int:
    """Images per optimization: param.batch, else the interpolation's frames, else the number of units (or 1)."""
    if spec.param.batch:
        return spec.param.batch
    if spec.interpolate is not None:
        return spec.interpolate.frames
    return max((len(t.units) for t in spec.objective if isinstance(t.units, list)), default=1)


BATCH_TERMS = ("diversity", "alignment")
#: Parameterizations that can start from a photo, share low-resolution parts, and be blurred.
_PIXEL_LIKE = ("fft", "pixel")


def _check_techniques(spec: Spec, batch: int) -> None:
    """Rules of diversity/alignment, interpolation, the newer parameterizations, photos and crops."""
    n = len(spec.objective)
    for i, term in enumerate(spec.objective):
        where = term_path(n, i)
        if term.type in BATCH_TERMS:
            if term.batch is not None:
                raise SpecError(f"{where}.batch", f"'{term.type}' compares batch elements; remove 'batch'.")
            if batch < 2:
                raise SpecError(
                    f"{where}.type", f"'{term.type}' needs a batch of 2 or more images; set param.batch (e.g. 4)."
                )
            if term.group is not None and batch % term.group:
                raise SpecError(f"{where}.group", f"{term.group} does not divide the batch of {batch} images.")
        elif term.group is not None:
            raise SpecError(f"{where}.group", f"only 'diversity' and 'alignment' take a group; type is '{term.type}'.")
    _check_interpolate(spec, batch)
    _check_param(spec)
    crops = [i for i, t in enumerate(spec.transforms) if t.type == "crops"]
    if len(crops) > 1:
        raise SpecError(f"transforms[{crops[1]}]", "only one 'crops' transform is allowed.")
    for i, t in enumerate(spec.transforms):
        where = f"transforms[{i}]"
        if t.type != "crops" and (t.count is not None or t.box is not None):
            raise SpecError(f"{where}.count", f"only 'crops' takes count/box; type is '{t.type}'.")
        if t.type != "noise" and t.std is not None:
            raise SpecError(f"{where}.std", f"only 'noise' takes std; type is '{t.type}'.")
        if t.box is not None and (len(t.box) != 2 or not all(0 < b <= 1 for b in t.box)):
            raise SpecError(f"{where}.box", "needs [start, end], fractions of the image side in (0, 1], e.g. [0.5, 0.05].")


def _check_interpolate(spec: Spec, batch: int) -> None:
    it = spec.interpolate
    if it is None:
        return
    if spec.param.batch is not None and spec.param.batch != it.frames:
        raise SpecError("param.batch", f"is {spec.param.batch} but interpolate.frames is {it.frames}; drop param.batch.")
    ends = [t for t in spec.objective if t.type not in BATCH_TERMS]
    if len(ends) < 2 or spec.objective[0].type in BATCH_TERMS or spec.objective[1].type in BATCH_TERMS:
        raise SpecError(
            "objective", "interpolate needs the two end points as the first two objective terms (A, then B); "
            "diversity/alignment terms may follow."
        )
    for i in (0, 1):
        t = spec.objective[i]
        if t.units is not None or t.batch is not None:
            raise SpecError(
                f"objective[{i}].units" if t.units is not None else f"objective[{i}].batch",
                "an interpolation end point is one objective for all frames; give 'unit', not 'units' or 'batch'.",
            )
    if it.shared and spec.param.type not in _PIXEL_LIKE:
        raise SpecError("interpolate.shared", f"works with param.type fft or pixel, not '{spec.param.type}'; set it false.")


def _check_param(spec: Spec) -> None:
    p = spec.param
    if p.init_image is not None and p.type not in _PIXEL_LIKE:
        raise SpecError("param.init_image", f"works with param.type fft or pixel, not '{p.type}'.")
    if spec.regularizers.init_l2 and p.init_image is None:
        raise SpecError("regularizers.init_l2", "needs param.init_image (the photo to stay near).")
    if spec.regularizers.blur_every and p.type not in _PIXEL_LIKE:
        raise SpecError("regularizers.blur_every", f"blurring works with param.type fft or pixel, not '{p.type}'; set 0.")
    if p.spectrum is not None and p.type != "maco":
        raise SpecError("param.spectrum", f"only param.type maco takes a spectrum; type is '{p.type}'.")
    if p.type == "generator":
        g = p.generator
        if g is None:
            raise SpecError("param.generator", "required for type 'generator': {python: 'module:factory', latent_size: N}.")
        if (g.python is None) == (g.checkpoint is None):
            raise SpecError("param.generator.python", "give exactly one of 'python' (module:factory) or 'checkpoint' (TorchScript).")
        r = g.output_range
        if len(r) != 2 or r[0] >= r[1]:
            raise SpecError("param.generator.output_range", "needs [low, high] with low < high, e.g. [-1, 1].")
    elif p.generator is not None:
        raise SpecError("param.generator", f"only param.type generator takes a generator; type is '{p.type}'.")


_UNIT_RANGE = re.compile(r"^\s*(\d*)\s*:\s*(\d*)\s*(?::\s*(\d*)\s*)?$")


def parse_unit_range(text: str, field: str = "objective.units") -> slice:
    """Sweep units as a slice: ``'all'`` -> ``slice(None)``, ``'start:stop[:step]'`` (stop excluded).

    Anything else raises ``SpecError`` naming ``field``.
    """
    if text.strip().lower() == "all":
        return slice(None)
    m = _UNIT_RANGE.match(text)
    if not m:
        raise SpecError(field, f"{text!r} is not 'all', a range 'start:stop' (e.g. '0:64') or a list of units.")
    start, stop, step = (int(g) if g else None for g in m.groups())
    if step == 0:
        raise SpecError(field, f"{text!r}: the step must be >= 1.")
    if start is not None and stop is not None and stop <= start:
        raise SpecError(field, f"{text!r} is empty: stop must be greater than start (stop is excluded).")
    return slice(start, stop, step)


def sweep_only_field(spec: Spec) -> str | None:
    """The first field only 'featviz sweep' can expand (a layer list, units 'all' or a range), or None."""
    for i, t in enumerate(spec.objective):
        where = term_path(len(spec.objective), i)
        if isinstance(t.layer, list):
            return f"{where}.layer"
        if isinstance(t.units, str):
            return f"{where}.units"
    return None


def _check_layer_list(layers: list[str], kind: str, field: str) -> None:
    if kind not in ("neuron", "channel", "logit", "probability"):
        raise SpecError(field, f"a list of layers sweeps units; type '{kind}' has none. Give one layer.")
    if len(set(layers)) != len(layers):
        dup = next(x for x in layers if layers.count(x) > 1)
        raise SpecError(field, f"layer {dup!r} is listed twice; list each layer once.")


def _check_device(device: str) -> None:
    ok = device in ("auto", "cpu", "mps", "cuda") or (
        device.startswith("cuda:") and device[5:].isdigit()
    )
    if not ok:
        raise SpecError("device", f"{device!r} is not a device; use auto, cpu, cuda, cuda:N or mps.")


# ---------------------------------------------------------------- generic typed builder


def _tname(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: Any, path: str) -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ``SpecError``."""
    if not isinstance(data, dict):
        raise SpecError(path or "spec", f"must be a mapping (key: value), got {_tname(data)}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        key_s = str(key)
        sub = f"{path}.{key_s}" if path else key_s
        if key_s not in fields:
            close = difflib.get_close_matches(key_s, list(fields), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else f" Known keys: {', '.join(fields)}."
            raise SpecError(sub, f"unknown key.{hint}")
        f = fields[key_s]
        kwargs[key_s] = _coerce(hints[key_s], value, sub, f.metadata)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError(f"{path}.{name}" if path else name, "missing; this key is required.")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, path: str, meta: Any = None) -> Any:
    """Check ``value`` against type ``tp`` (and limits in ``meta``); return the typed value."""
    meta = meta or {}
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, path, meta)
            except SpecError as e:
                errors.append(e)
        expected = " or ".join(_describe(a) for a in args)
        if len(errors) == 1:
            raise errors[0]
        raise SpecError(path, f"expected {expected}, got {_tname(value)} {value!r}.")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise SpecError(path, f"{value!r} is not one of {', '.join(map(str, choices))}.{hint}")
        return value
    if origin is list:
        (item_tp,) = get_args(tp)
        if not isinstance(value, list):
            raise SpecError(path, f"expected a list, got {_tname(value)}.")
        if "min_items" in meta and len(value) < meta["min_items"]:
            raise SpecError(path, f"needs at least {meta['min_items']} item(s).")
        return [_coerce(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(path, f"expected a mapping, got {_tname(value)}.")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(path, f"expected true or false, got {_tname(value)} {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise SpecError(path, f"expected an integer, got {_tname(value)} {value!r}.")
        _limits(value, path, meta)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(path, f"expected a number, got {_tname(value)} {value!r}.")
        value = float(value)
        if not math.isfinite(value):
            raise SpecError(path, f"must be a finite number, got {value}.")
        _limits(value, path, meta)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(path, f"expected a string, got {_tname(value)} {value!r}.")
        return value
    raise TypeError(f"unsupported spec type {tp!r} at {path}")  # pragma: no cover - programming error


def _limits(value: float, path: str, meta: Any) -> None:
    if "ge" in meta and value < meta["ge"]:
        raise SpecError(path, f"must be >= {meta['ge']}, got {value}.")
    if "gt" in meta and value <= meta["gt"]:
        raise SpecError(path, f"must be > {meta['gt']}, got {value}.")
    if "le" in meta and value > meta["le"]:
        raise SpecError(path, f"must be <= {meta['le']}, got {value}.")


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(c) for c in get_args(tp))
    if origin is list:
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false", type(None): "null"}.get(tp, str(tp))


# ---------------------------------------------------------------- JSON Schema and dumping


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the spec, generated from the dataclasses."""
    schema = _schema_of(Spec, {})
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "featviz experiment spec"
    schema["required"] = ["objective"]
    obj = schema["properties"]["objective"]
    schema["properties"]["objective"] = {"description": obj.get("description", ""), "oneOf": [obj["items"], obj]}
    tr = schema["properties"]["transforms"]
    schema["properties"]["transforms"] = {
        "description": tr.get("description", ""),
        "oneOf": [{"enum": ["standard", "none", None, False]}, tr],
    }
    return schema


def _schema_of(tp: Any, meta: Any) -> dict[str, Any]:
    origin = get_origin(tp)
    out: dict[str, Any]
    if origin in (Union, types.UnionType):
        limits = {k: v for k, v in meta.items() if k in ("ge", "gt", "le")}  # e.g. int | None with ge=1
        out = {"anyOf": [_schema_of(a, limits) for a in get_args(tp)]}
    elif origin is Literal:
        out = {"enum": list(get_args(tp))}
    elif origin is list:
        out = {"type": "array", "items": _schema_of(get_args(tp)[0], {})}
        if "min_items" in meta:
            out["minItems"] = meta["min_items"]
    elif origin is dict:
        out = {"type": "object"}
    elif dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        props = {f.name: _schema_of(hints[f.name], f.metadata) for f in dataclasses.fields(tp)}
        out = {"type": "object", "properties": props, "additionalProperties": False}
        if tp.__doc__:
            out["description"] = tp.__doc__.strip().splitlines()[0]
        req = [f.name for f in dataclasses.fields(tp)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if req:
            out["required"] = req
    elif tp is type(None):
        out = {"type": "null"}
    else:
        out = {"type": {int: "integer", float: "number", str: "string", bool: "boolean"}[tp]}
        for k, j in (("ge", "minimum"), ("gt", "exclusiveMinimum"), ("le", "maximum")):
            if k in meta:
                out[j] = meta[k]
    if meta.get("help"):
        out["description"] = meta["help"]
    return out


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The resolved spec as plain data (for meta.json and for reproducing a run)."""
    return dataclasses.asdict(spec)
