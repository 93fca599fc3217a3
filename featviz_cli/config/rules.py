"""Cross-field rules of the spec that types alone cannot express, and the helpers they share.

Every error names the YAML field (``objective[1].unit``) and what would fix it.
"""
from __future__ import annotations

import re

from ..errors import SpecError
from .spec import Spec


def term_path(n_terms: int, i: int) -> str:
    """How the spec names objective term ``i``: ``objective`` for one term, else ``objective[i]``."""
    return "objective" if n_terms == 1 else f"objective[{i}]"


def check_rules(spec: Spec) -> None:
    """Raise ``SpecError`` for the first cross-field rule that ``spec`` breaks (what types alone cannot say)."""
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
        dictionary = term.type == "direction" and term.vector_file is not None
        if term.type not in needs_unit and not dictionary and (term.unit is not None or term.units is not None):
            hint = " (direction: rows of a vector_file matrix)" if term.type == "direction" else ""
            raise SpecError(f"{where}.unit", f"type '{term.type}' takes no unit{hint}; remove it.")
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
            if term.vector_key is not None and term.vector_file is None:
                raise SpecError(f"{where}.vector_key", "names a tensor of vector_file; give vector_file too.")
        elif any(getattr(term, k) is not None for k in ("vector", "vector_file", "random_seed", "vector_key")):
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
        if t.type != "crops" and t.centres is not None:
            raise SpecError(f"{where}.centres", f"only 'crops' takes centres; type is '{t.type}'.")
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
    if spec.regularizers.features is not None and p.init_image is None:
        raise SpecError("regularizers.features", "needs param.init_image (the photo whose activations to stay near).")
    if spec.regularizers.features is not None and not spec.regularizers.features.layer.strip():
        raise SpecError("regularizers.features.layer", "must name a layer; run 'featviz layers MODEL' to list names.")
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


def check_render(spec: Spec) -> None:
    """``SpecError`` naming the field where 'featviz render' refuses a spec only 'featviz sweep' can run."""
    field = sweep_only_field(spec)
    if field:
        raise SpecError(field, "layer lists, 'all' and ranges are for sweeps: run 'featviz sweep SPEC', "
                        "or give one layer and a list of units.")


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
