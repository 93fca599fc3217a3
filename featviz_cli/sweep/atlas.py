"""``featviz atlas MODEL``: a Microscope of a whole model in one command, with its time estimate first.

An atlas is an ordinary sweep (resumable, shardable, the same files) whose spec is written for you:
every layer of a kind (by default the model's repeated blocks, e.g. every ``_blocks.N`` of an
EfficientNet; else every module with a channel map), every unit, and three techniques per unit
(``channel``, ``neuron`` and ``{diverse: 3}``). Before it starts, it says how long it expects to take:
from the recorded per-unit times where the directory already holds part of the same atlas, else from
a calibration (each technique optimized for 1 and 3 steps on the first and the last layer, the
per-step time interpolated over the layers in between).
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..config import ModelSpec, Spec, apply_override, parse_spec
from ..errors import LayerError, SpecError

DEFAULT_TECHNIQUES: list[Any] = ["channel", "neuron", {"diverse": 3}]
DEFAULT_STEPS = 256
SPEC_FILE = "atlas.yaml"  # the atlas's spec, written into OUT: 'featviz sweep OUT/atlas.yaml' resumes or shards it
_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


def block_layers(model: Any, info: Any, kind: str | None = None) -> list[str]:
    """Every layer of a kind with a channel map (more than one position), in the model's order: modules of type ``kind``, else of the
    most frequent composite type (the blocks), else every module with a map. ``LayerError`` for an unknown kind."""
    import torch

    from ..hooks import list_layers

    rows = list_layers(model.eval(), torch.zeros(1, 3, info.input_size, info.input_size))
    mapped = [r for r in rows if r.shape is not None and len(r.shape) == 3 and r.shape[1] * r.shape[2] > 1]
    if kind is not None:
        found = [r.name for r in mapped if r.type == kind]
        if not found:
            common = ", ".join(t for t, _ in Counter(r.type for r in mapped).most_common(6))
            raise LayerError(f"--kind: no layer of type {kind!r} with a channel map; types here: {common}.")
        return found
    modules = dict(model.named_modules())
    composite = Counter(r.type for r in mapped if r.type not in _CONTAINERS and any(True for _ in modules[r.name].children()))
    if composite:
        top, count = composite.most_common(1)[0]
        if count >= 2:
            return [r.name for r in mapped if r.type == top]
    return [r.name for r in mapped]


def atlas_data(model: dict[str, Any], layers: Sequence[str], *, units: str = "all", steps: int = DEFAULT_STEPS,
               size: int | None = None, techniques: list[Any] | None = None, device: str = "auto",
               batch: int | None = None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The sweep spec of an atlas as plain data (what ``OUT/atlas.yaml`` holds): a channel term over
    ``layers`` and ``units``, with ``techniques``; then ``--set`` style ``overrides`` (``key.path=value``)."""
    data: dict[str, Any] = {
        "name": f"{model.get('name') or model.get('python') or 'model'} atlas",
        "model": model,
        "objective": {"type": "channel", "layer": list(layers), "units": units},
        "steps": steps,
        "device": device,
        "sweep": {"techniques": techniques or DEFAULT_TECHNIQUES, **({"batch": batch} if batch else {})},
    }
    if size is not None:
        data["param"] = {"size": size}
    for item in overrides:
        apply_override(data, item)
    return data


def spec_yaml(data: dict[str, Any]) -> str:
    """An atlas's spec data as the YAML of ``OUT/atlas.yaml``."""
    import yaml

    head = "# featviz atlas: resume with the same command, or shard with 'featviz sweep atlas.yaml --out DIR --shard I/N'\n"
    return head + yaml.safe_dump(data, sort_keys=False)


@dataclass
class Estimate:
    """How long the rest of an atlas should take, and how that was found."""

    seconds: float
    units: int  # renders still to do (a unit once per technique)
    batches: int
    how: str

    def text(self) -> str:
        """One line for the user."""
        return (f"{self.units} render(s) in {self.batches} batch(es) to do: about {duration(self.seconds)} "
                f"({self.how})")


def duration(seconds: float) -> str:
    """``3 h 05 min``, ``12 min``, ``40 s``."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def estimate(plan: Any, pending: list[Any], out: Path, model: Any, info: Any, device: str) -> Estimate:
    """The time ``pending`` batches of ``plan`` should take: recorded per-unit times of the same atlas where
    every technique has some, else a calibration on this device."""
    from .manifest import collect_units
    from .record import read_record

    todo = sum(len(b.units) for b in pending)
    if not pending:
        return Estimate(0.0, 0, 0, "nothing left to do")
    record = read_record(out)
    recorded: dict[str | None, list[float]] = {}
    if record is not None and record.get("spec_hash") == plan.spec_hash:
        for e in collect_units(out, record):
            if e["status"] == "done" and isinstance(e.get("time_s"), (int, float)):
                recorded.setdefault(e.get("technique"), []).append(float(e["time_s"]))
    wanted = {b.technique for b in pending}
    if wanted and all(recorded.get(t) for t in wanted):
        seconds = sum(len(b.units) * _mean(recorded[b.technique]) for b in pending)
        n = sum(len(v) for v in recorded.values())
        return Estimate(seconds, todo, len(pending), f"from the recorded times of {n} render(s) done")
    per_batch = _calibrate(plan, pending, model, info, device)
    seconds = sum(per_batch(b) for b in pending)
    return Estimate(seconds, todo, len(pending), f"calibrated on {device}: each technique for 1 and 3 steps "
                    "on the first and last layer")


def _calibrate(plan: Any, pending: list[Any], model: Any, info: Any, device: str) -> Any:
    """A function batch -> expected seconds, from short optimizations of each technique's first and last layer."""
    order = [lp.layer for lp in plan.layers]
    timed: dict[tuple[str | None, str], tuple[float, float]] = {}
    _time_batch(plan, pending[0], model, info, device, (1,))  # warm-up: the first optimization is slower
    for t in dict.fromkeys(b.technique for b in pending):
        mine = [b for b in plan.batches if b.technique == t]
        for b in dict.fromkeys([mine[0], mine[-1]]):
            timed[(t, b.layer)] = _time_batch(plan, b, model, info, device)

    def seconds(b: Any) -> float:
        first, last = order[0], order[-1]
        a = timed.get((b.technique, first)) or timed[(b.technique, last)]
        z = timed.get((b.technique, last)) or a
        w = order.index(b.layer) / (len(order) - 1) if len(order) > 1 else 0.0
        overhead, step = ((1 - w) * a[0] + w * z[0], (1 - w) * a[1] + w * z[1])
        return overhead + plan.spec.steps * step

    return seconds


def _time_batch(plan: Any, b: Any, model: Any, info: Any, device: str,
                steps_list: tuple[int, ...] = (1, 3)) -> tuple[float, float]:
    """(overhead, seconds per step) of one batch: optimized for 1 step and for 3 steps."""
    from ..engine import render
    from .batch import batch_spec

    times = []
    for steps in steps_list:
        spec = batch_spec(plan, b, device)
        spec.steps, spec.thresholds = steps, []
        t0 = time.perf_counter()
        render(spec, model=model, info=info)
        times.append(time.perf_counter() - t0)
    if len(times) < 2:
        return times[0], 0.0
    step = max(0.0, (times[1] - times[0]) / 2)
    return max(0.0, times[0] - step), step


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


@dataclass
class AtlasReport:
    """What ``run_atlas`` did: the spec, the estimate made before it started, the sweep's report, and the
    examples and faithfulness steps where photos were given (their results, or None)."""

    spec: Spec
    layers: list[str]
    estimate: Estimate
    sweep: Any = None
    examples: Any = None
    faithfulness: Any = None


#: The spec fields the atlas's options fill in, for errors that name what the user typed.
_OPTIONS = {"objective.units": "--units", "objective.layer": "--layers"}


def _named_by_option(e: SpecError | LayerError) -> SpecError | LayerError:
    """The error with the spec field that an option filled in replaced by the option's name."""
    text = str(e)
    for field, option in _OPTIONS.items():
        if text.startswith(field + ":"):
            rest = text[len(field) + 2:]
            return SpecError(option, rest) if isinstance(e, SpecError) else LayerError(f"{option}: {rest}")
    return e


def run_atlas(model: str, out: str | Path, *, layers: Sequence[str] | None = None, kind: str | None = None,
              units: str = "all", steps: int = DEFAULT_STEPS, size: int | None = None, device: str = "auto",
              overrides: Sequence[str] = (), images: str | None = None, k: int = 8, shard: tuple[int, int] = (0, 1),
              dry_run: bool = False, notify: Any = None, progress: Any = None, stop: Any = None) -> AtlasReport:
    """Write the atlas's spec (``OUT/atlas.yaml``), say how long it should take, then run it as a sweep.

    With ``images`` and once every unit is done, also the dataset examples (``k`` per unit, top and
    bottom) and the faithfulness step, then the gallery again. ``dry_run`` stops after the estimate.
    """
    from ..examples import run_examples
    from ..faithfulness import run_faithfulness
    from ..hooks import resolve_layer
    from ..models import load_model
    from ..outputs import atomic_write_text, prepare_output_dir, safe_join
    from ..runtime import pick_device
    from .plan import make_plan, shard_batches
    from .record import read_record
    from .run import resume_check, run_sweep

    say = notify or (lambda _m: None)
    net, info = load_model(ModelSpec(name=model))
    chosen = list(layers) if layers else block_layers(net, info, kind)
    for name in chosen:
        resolve_layer(net, name, field="--layers")
    data = atlas_data({"name": model}, chosen, units=units, steps=steps, size=size, device=device, overrides=overrides)
    spec = parse_spec(data)
    dev = pick_device(spec.device)
    existing = read_record(Path(out)) if Path(out).is_dir() else None
    # the whole plan is checked before the output directory is made: bad input leaves nothing behind
    try:
        plan = make_plan(spec, net, info, dev.type, recorded_batch=existing.get("batch_size") if existing else None)
    except (SpecError, LayerError) as e:
        raise _named_by_option(e) from None
    out = prepare_output_dir(Path(out))
    pending = resume_check(out, plan, shard_batches(plan.batches, *shard)).pending
    techniques = ", ".join(t.title for t in plan.techniques)
    say(f"atlas of {model}: {len(chosen)} layer(s) ({chosen[0]} .. {chosen[-1]}), {plan.total} render(s) "
        f"({techniques}), {spec.steps} steps at {spec.param.size} px on {dev}")
    est = estimate(plan, pending, out, net, info, str(dev))
    say(est.text())
    report = AtlasReport(spec, chosen, est)
    atomic_write_text(safe_join(out, SPEC_FILE), spec_yaml(data))
    if dry_run:
        return report
    del net
    report.sweep = run_sweep(spec, out, shard=shard, progress=progress, stop=stop, notify=notify)
    if images and report.sweep.done == report.sweep.planned and not report.sweep.interrupted and shard[1] == 1:
        ex = parse_spec({**data, "dataset": {"images": images, "k": k, "bottom": True}, "output": {"dir": str(out)}})
        report.examples = run_examples(ex, notify=notify)
        report.faithfulness = run_faithfulness(out, device=device if device != "auto" else None, notify=notify)
    return report


__all__ = ["DEFAULT_STEPS", "DEFAULT_TECHNIQUES", "SPEC_FILE", "AtlasReport", "Estimate", "atlas_data", "run_atlas", "block_layers", "duration",
           "estimate", "spec_yaml"]
