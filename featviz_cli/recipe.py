"""Spec + model info -> a Recipe: the objects the engine optimizes with, built in this one place.

Every translation from the spec's plain data into objects happens here: the objective (with
interpolation as a blend of its first two terms), the image parameterization (started from a
photo where asked, with shared low-resolution parts for interpolation frames), the composed
transform, the penalties, and the optimizer settings. The pieces themselves (objectives, params,
transforms) know nothing of the spec.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from . import objectives as obj
from . import params
from . import transforms as tf
from .config import ObjectiveSpec, ParamSpec, RegularizerSpec, Spec, TransformSpec, batch_size, term_path
from .errors import SpecError
from .hooks import OUTPUT, resolve_layer
from .images import load_image
from .models import ModelInfo
from .optimizers import Schedule

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class Recipe:
    """What to optimize and how: everything the engine needs besides the model and where it runs.

    ``generator`` is the seeded generator of the render: the image's random init has drawn from
    it, the transforms draw from it every step. ``techniques`` describes the pieces for metadata.
    """

    objective: obj.Objective
    image: params.ImageParam
    transform: Transform
    penalties: obj.Objective | None
    generator: torch.Generator
    steps: int
    optimizer: str = "adam"
    lr: float = 0.05
    schedule: Schedule = field(default_factory=Schedule)
    thresholds: tuple[int, ...] = ()
    blur_every: int = 0
    blur_sigma: float = 0.5
    relu_redirect: int = 0
    #: Accumulate the transparency map (|d loss / d image| over the steps) of every image.
    alpha: bool = False
    techniques: dict[str, Any] = field(default_factory=dict)

    @property
    def layers(self) -> list[str]:
        """The network layers the objective and the penalties read (the image itself excluded)."""
        names = self.objective.layers + (self.penalties.layers if self.penalties else ())
        return [n for n in dict.fromkeys(names) if n != obj.IMAGE]


def build_recipe(spec: Spec, info: ModelInfo, device: torch.device, objective: obj.Objective | None = None) -> Recipe:
    """The recipe of a validated render spec for a model described by ``info``, with tensors on ``device``.

    A prebuilt ``objective`` (a caricature, an activation grid) replaces the spec's terms.
    """
    objective = objective or build_objective(spec.objective, info.class_names,
                                             frames=spec.interpolate.frames if spec.interpolate else None)
    generator = torch.Generator().manual_seed(spec.seed)
    p = spec.param
    photo = photo_of(p)
    image = build_image(spec, batch_size(spec), generator, device, photo)
    techniques: dict[str, Any] = {"param": params.describe_param(p.type, dataclasses.asdict(p))}
    if spec.interpolate is not None:
        techniques["interpolation_weights_b"] = [round(w, 6) for w in obj.frame_weights(spec.interpolate.frames)]
        if spec.interpolate.shared:
            techniques["param"] += " + low-resolution parts shared by the frames"
    return Recipe(
        objective=objective,
        image=image,
        transform=build_transform(spec.transforms, info.input_size if spec.resize_to_model else None, spec.views),
        penalties=build_penalties(spec.regularizers, photo),
        generator=generator,
        steps=spec.steps,
        optimizer=spec.optimizer.type,
        lr=spec.optimizer.lr,
        schedule=Schedule(spec.optimizer.schedule, spec.steps, spec.optimizer.final_lr, spec.optimizer.warmup),
        thresholds=tuple(spec.thresholds),
        blur_every=spec.regularizers.blur_every,
        blur_sigma=spec.regularizers.blur_sigma,
        relu_redirect=spec.relu_redirect,
        alpha=spec.output.alpha,
        techniques=techniques,
    )


def check_layers(spec: Spec, model: nn.Module) -> None:
    """Every layer the objective and ``regularizers.features`` name exists in ``model``; ``LayerError``
    naming the field otherwise."""
    n = len(spec.objective)
    for i, term in enumerate(spec.objective):
        if term.layer:
            resolve_layer(model, term.layer, field=f"{term_path(n, i)}.layer")  # type: ignore[arg-type]
    if spec.regularizers.features is not None:
        resolve_layer(model, spec.regularizers.features.layer, field="regularizers.features.layer")


# ---------------------------------------------------------------- the image


def build_image(spec: Spec, batch: int, generator: torch.Generator, device: torch.device,
                photo: torch.Tensor | None = None) -> params.ImageParam:
    """The image of a render: ``image_param`` of ``spec.param``, and for interpolation frames the
    low-resolution parts they share (drawn next from ``generator``)."""
    image = image_param(spec.param, batch, generator, device, photo)
    if spec.interpolate is not None and spec.interpolate.shared:
        image = params.SharedLowRes(image, batch, spec.param.size, sd=spec.param.sd, generator=generator, device=device)
    return image


def image_param(p: ParamSpec, batch: int, generator: torch.Generator, device: torch.device,
                photo: torch.Tensor | None = None) -> params.ImageParam:
    """The parameterization ``param:`` describes, for ``batch`` images; its random init draws from ``generator``.

    With a ``photo`` (1, 3, H, W; see ``photo_of``) the parameters are then set so that the
    first image is the photo.
    """
    image = params.build_param(p.type, dataclasses.asdict(p), batch, generator, device)
    if photo is not None:
        image.load_raw_(params.from_valid_rgb(photo.to(device), decorrelate=p.decorrelate, output=p.output))
    return image


def photo_of(p: ParamSpec) -> torch.Tensor | None:
    """The ``param.init_image`` photo as a (1, 3, size, size) tensor in [0, 1], or None."""
    return load_image(p.init_image, p.size).unsqueeze(0) if p.init_image is not None else None


# ---------------------------------------------------------------- transforms and penalties


def transform_of(t: TransformSpec) -> tf.Transform:
    """The transform one ``transforms:`` entry describes."""
    if t.type == "crops":
        box = t.box or (0.5, 0.05)
        return tf.Crops(t.count or 32, float(box[0]), float(box[1]), centres=t.centres or "normal")
    if t.type == "noise":
        return tf.Noise(0.04 if t.std is None else t.std)
    if t.type == "pad":
        return tf.Pad(int(t.pixels or 0), t.mode, t.value)
    if t.type == "jitter":
        return tf.Jitter(int(t.pixels or 0))
    if t.type == "scale":
        return tf.Scale(tuple(t.factors or (1.0,)))
    return tf.Rotate(tuple(t.degrees or (0.0,)))


def build_transform(transforms: Sequence[TransformSpec], out_size: int | None, views: int = 1) -> Transform:
    """The composed transform of a ``transforms:`` list, resizing to ``out_size`` (the model's input) if given,
    with ``views`` random draws of it per image and step."""
    return tf.compose([transform_of(t) for t in transforms], out_size=out_size, views=views)


def build_penalties(r: RegularizerSpec, photo: torch.Tensor | None = None) -> obj.Objective | None:
    """The ``regularizers:`` penalties as one objective to subtract (None when all weights are 0)."""
    terms = [w * o for w, o in ((r.tv, obj.total_variation()), (r.l1, obj.lp_norm(1)), (r.l2, obj.lp_norm(2))) if w]
    if r.init_l2 and photo is not None:
        terms.append(r.init_l2 * obj.distance_to(photo))
    if r.features is not None and r.features.weight and photo is not None:
        terms.append(r.features.weight * obj.feature_distance(r.features.layer, photo))
    return sum(terms[1:], terms[0]) if terms else None


# ---------------------------------------------------------------- the objective


def build_objective(terms: Sequence[ObjectiveSpec], class_names: Sequence[str] | None = None, *,
                    frames: int | None = None) -> obj.Objective:
    """The summed objective of the spec's terms, each times its weight.

    With ``frames`` (interpolation) the first two terms are the end points: frame f of N
    optimizes (1 - t) * A + t * B with t = f / (N - 1); further terms are added to every frame.
    """
    n = len(terms)
    built = [build_term(t, class_names, term_path(n, i)) for i, t in enumerate(terms)]
    if frames is not None:
        built = [obj.blend(built[0], built[1], obj.frame_weights(frames))] + built[2:]
    total = built[0]
    for term in built[1:]:
        total = total + term
    return total


def build_term(t: ObjectiveSpec, names: Sequence[str] | None, where: str) -> obj.Objective:
    """One spec term as an objective, times its weight; ``where`` names it in errors (``objective[1]``)."""
    term = _term(t, names, where)
    return term * t.weight if t.weight != 1.0 else term


def _term(t: ObjectiveSpec, names: Sequence[str] | None, where: str) -> obj.Objective:
    field = f"{where}.unit" if t.units is None else f"{where}.units"
    if t.type == "diversity":
        return obj.diversity(t.layer or "", group=t.group)  # type: ignore[arg-type]
    if t.type == "alignment":
        return obj.alignment(t.layer or "", group=t.group)  # type: ignore[arg-type]
    raw = t.units if t.units is not None else t.unit
    if t.type in ("logit", "probability"):
        if isinstance(raw, list):
            units: int | list[int] = [resolve_class(u, names, field) for u in raw]
        else:
            units = resolve_class(raw, names, field)  # type: ignore[arg-type]
        return obj.logit(units, layer=t.layer or OUTPUT, batch=t.batch, names=names,  # type: ignore[arg-type]
                         probability=t.type == "probability", field=field)
    assert isinstance(t.layer, str), "validated render specs name one layer"
    if t.type in ("layer", "deepdream"):
        return obj.deepdream(t.layer, batch=t.batch)
    if t.type == "direction":
        if t.vector is not None:
            vec, name = torch.tensor(t.vector, dtype=torch.float32), "vector"
        elif t.vector_file is not None and raw is not None:  # rows of a dictionary
            return _dictionary_term(t, where)
        elif t.vector_file is not None:
            vec, name = load_vector(t.vector_file, f"{where}.vector_file", t.vector_key), Path(t.vector_file).name
        else:
            vec, name = None, f"random seed {t.random_seed}"
        return obj.direction(t.layer, vec, seed=t.random_seed, cossim_pow=t.cossim_pow, batch=t.batch, name=name)
    int_units = raw if isinstance(raw, list) else int(raw)  # type: ignore[arg-type]
    if t.type == "neuron":
        return obj.neuron(t.layer, int_units, t.x, t.y, batch=t.batch, field=field)  # type: ignore[arg-type]
    return obj.channel(t.layer, int_units, batch=t.batch, field=field)  # type: ignore[arg-type]


def resolve_class(unit: int | str, names: Sequence[str] | None, field: str) -> int:
    """A class index from an index or a class name (case-insensitive), with close matches on error."""
    if isinstance(unit, int):
        return unit
    if names is None:
        raise SpecError(field, f"class name {unit!r} given, but this model has no class names; give an index.")
    lowered = [n.lower() for n in names]
    key = unit.strip().lower()
    if key in lowered:
        return lowered.index(key)
    close = difflib.get_close_matches(key, lowered, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(names[lowered.index(c)]) for c in close)}?" if close else ""
    raise SpecError(field, f"no class named {unit!r} in this model.{hint}")


def _dictionary_term(t: ObjectiveSpec, where: str) -> obj.Objective:
    """A direction term whose ``unit``/``units`` are rows of the N x C matrix in ``vector_file``."""
    from .directions.matrix import dictionary_rows

    rows = [int(t.unit)] if t.units is None else [int(u) for u in t.units]  # type: ignore[arg-type]
    vec = dictionary_rows(t.vector_file, rows, key=t.vector_key, field=f"{where}.vector_file")  # type: ignore[arg-type]
    name = Path(t.vector_file).name  # type: ignore[arg-type]
    if t.units is None:
        return obj.direction(t.layer, vec[0], cossim_pow=t.cossim_pow, batch=t.batch,  # type: ignore[arg-type]
                             name=f"{name}[{rows[0]}]")
    return obj.direction(t.layer, vec, cossim_pow=t.cossim_pow, batch=t.batch, name=name, rows=rows)  # type: ignore[arg-type]


def load_vector(path: str, field: str = "objective.vector_file", key: str | None = None) -> torch.Tensor:
    """A 1-D vector from a .npy or .pt/.pth file (tensors only; no pickled code); ``key`` picks a tensor
    of a file holding several (also .safetensors)."""
    if key is not None or path.endswith(".safetensors"):
        from .directions.matrix import read_array

        return read_array(path, key=key, field=field).flatten()
    p = Path(path)
    if not p.is_file():
        raise SpecError(field, f"{path}: no such file.")
    try:
        if p.suffix == ".npy":
            import numpy as np

            v = torch.from_numpy(np.load(p, allow_pickle=False)).float()
        else:
            v = torch.load(p, map_location="cpu", weights_only=True)
            if not isinstance(v, torch.Tensor):
                raise ValueError("the file does not hold a tensor")
            v = v.float()
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad input file
        raise SpecError(field, f"{path}: cannot read a vector ({e}); save a 1-D array with numpy.save or torch.save.") from None
    return v.flatten()
