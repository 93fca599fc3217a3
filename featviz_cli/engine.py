"""The optimization loop. No printing and no file I/O: progress goes through a callback.

``render(spec)`` resolves a validated spec into its pieces (model, objective,
parameterization, transforms) and calls ``optimize``, where they meet.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch
import torch.nn as nn

from . import objectives as obj
from . import param as prm
from . import runtime as rt
from . import transforms as tf
from .config import Spec, batch_size, sweep_only_field, term_path
from .errors import OptimizationError, SpecError
from .hooks import resolve_layer
from .models import ModelInfo, load_model
from .models.preprocess import Preprocess
from .optimizers import make_optimizer
from .redirect import redirected_relus


class Progress(Protocol):
    """Called every few steps with (steps done, total steps, mean objective value)."""

    def __call__(self, done: int, total: int, value: float) -> None: ...


@dataclass
class RenderResult:
    """What a render produced: images in [0, 1] on the CPU, labels, figures and timings."""

    images: torch.Tensor
    labels: list[str]
    values: list[float]
    curve: list[float]
    snapshots: dict[int, torch.Tensor]
    description: str
    layers: list[str]
    model_info: ModelInfo
    device: str
    precision: str
    steps: int
    seed: int
    timings: dict[str, float] = field(default_factory=dict)
    spec: Spec | None = None
    techniques: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, object] = field(default_factory=dict)


def build_transforms(spec: Spec, info: ModelInfo) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """The composed transform of a spec, resizing to the model's input size when asked."""
    items = [tf.from_spec(t) for t in spec.transforms]
    return tf.compose(items, out_size=info.input_size if spec.resize_to_model else None)


def render(
    spec: Spec,
    *,
    model: nn.Module | None = None,
    info: ModelInfo | None = None,
    progress: Progress | None = None,
    progress_every: int = 0,
) -> RenderResult:
    """Render the images a spec describes; a preloaded ``model``/``info`` skips loading."""
    sweep_field = sweep_only_field(spec)
    if sweep_field:
        raise SpecError(sweep_field, "layer lists, 'all' and ranges are for sweeps: run 'featviz sweep SPEC', "
                        "or give one layer and a list of units.")
    t0 = time.perf_counter()
    device = rt.pick_device(spec.device)
    dtype = rt.resolve_precision(spec.precision, device)
    if model is None or info is None:
        model, info = load_model(spec.model)
    t_load = time.perf_counter() - t0
    for i, term in enumerate(spec.objective):
        if term.layer:
            resolve_layer(model, term.layer, field=f"{term_path(len(spec.objective), i)}.layer")
    batch = batch_size(spec)
    if spec.interpolate is not None:
        from .interpolate import interpolation_objective

        objective = interpolation_objective(spec.objective, spec.interpolate.frames, info.class_names)
    else:
        objective = obj.from_spec(spec.objective, info.class_names)
    gen = torch.Generator().manual_seed(spec.seed)
    image = prm.make_param(spec.param, batch, gen, device)
    if spec.interpolate is not None and spec.interpolate.shared:
        from .interpolate import SharedLowRes

        image = SharedLowRes(image, batch, spec.param.size, sd=spec.param.sd, generator=gen, device=device)
    penalties = _penalties(spec)
    layers = [n for n in objective.layers + (penalties.layers if penalties else ()) if n != obj.IMAGE]
    model = model.to(device).eval()
    host_allocator = rt.tune_host_allocator() if device.type == "cpu" else "system"
    probe = Preprocess(info).to(device)(torch.rand(1, 3, info.input_size, info.input_size,
                                                   generator=torch.Generator().manual_seed(0)).to(device))
    with rt.rewritten(model, layers, probe, device, dtype) as rewrites:  # the user's model is restored afterwards
        result = optimize(
            model, info, objective, image, build_transforms(spec, info),
            steps=spec.steps, lr=spec.optimizer.lr, penalties=penalties, generator=gen, device=device,
            autocast_dtype=dtype, thresholds=spec.thresholds, blur_every=spec.regularizers.blur_every,
            blur_sigma=spec.regularizers.blur_sigma, progress=progress, progress_every=progress_every,
            optimizer=spec.optimizer.type, relu_redirect=spec.relu_redirect,
            channels_last=spec.channels_last, compile=spec.compile,
        )
    result.runtime.update(rewrites)
    result.runtime["host_allocator"] = host_allocator
    result.seed = spec.seed
    result.spec = spec
    result.timings["load_s"] = round(t_load, 4)
    result.techniques = {"param": prm.describe_param(spec.param), **result.techniques}
    if spec.interpolate is not None:
        from .interpolate import frame_weights

        result.techniques["interpolation_weights_b"] = [round(w, 6) for w in frame_weights(spec.interpolate.frames)]
        if spec.interpolate.shared:
            result.techniques["param"] += " + low-resolution parts shared by the frames"
    return result


#: Named ranges in a torch.profiler trace: where each step's time goes (free when no profiler runs).
_scope = torch.profiler.record_function


def _penalties(spec: Spec) -> obj.Objective | None:
    r = spec.regularizers
    terms = [w * o for w, o in ((r.tv, obj.total_variation()), (r.l1, obj.lp_norm(1)), (r.l2, obj.lp_norm(2))) if w]
    if r.init_l2 and spec.param.init_image is not None:
        from .images import load_image

        photo = load_image(spec.param.init_image, spec.param.size).unsqueeze(0)
        terms.append(r.init_l2 * obj.distance_to(photo))
    return sum(terms[1:], terms[0]) if terms else None


def _sample_groups(acts: dict[str, torch.Tensor], batch: int) -> list[dict[str, torch.Tensor]]:
    """Split activations of ``n * batch`` samples (crop-major: sample k of image i at k*batch + i) into n dicts."""
    n = max(v.shape[0] for v in acts.values()) // batch
    if n <= 1:
        return [acts]
    return [{k: v[i * batch:(i + 1) * batch] if v.shape[0] == n * batch else v for k, v in acts.items()}
            for i in range(n)]


def _mean_over(fn: obj.Objective, groups: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """Per-image values of ``fn``, averaged over the samples' groups."""
    if len(groups) == 1:
        return fn(groups[0])
    return torch.stack([fn(g) for g in groups]).mean(0)


def optimize(
    model: nn.Module,
    info: ModelInfo,
    objective: obj.Objective,
    image: prm.ImageParam,
    transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    *,
    steps: int,
    lr: float = 0.05,
    penalties: obj.Objective | None = None,
    generator: torch.Generator,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    thresholds: list[int] | tuple[int, ...] = (),
    blur_every: int = 0,
    blur_sigma: float = 0.5,
    progress: Progress | None = None,
    progress_every: int = 0,
    optimizer: str = "adam",
    relu_redirect: int = 0,
    channels_last: bool | str = "auto",
    compile: bool = False,
) -> RenderResult:
    """Maximize ``objective`` (minus ``penalties``) over the parameters of ``image``.

    ``optimizer`` is adam, sgd, sign or nadam; for the first ``relu_redirect`` steps the
    model's ReLU/ReLU6 modules pass redirected gradients. A transform may return several
    samples per image (MACO's crops): the objective is then averaged over them.
    ``channels_last`` (True, False or ``"auto"``) and ``compile`` choose how the network
    runs (``runtime.Network``); neither changes what it computes beyond rounding.
    """
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    pre = Preprocess(info).to(device)
    layers = [name for name in objective.layers + (penalties.layers if penalties else ()) if name != obj.IMAGE]
    net = rt.Network(model, layers, device, dtype=autocast_dtype,
                     channels_last=rt.resolve_channels_last(channels_last, device), compile=compile)
    opt = make_optimizer(optimizer, image.params, lr)
    set_progress = getattr(transform, "set_progress", None)
    redirected = 0
    scaler = torch.amp.GradScaler("cuda") if autocast_dtype == torch.float16 else None
    curve = torch.zeros(steps, device=device)
    snapshots: dict[int, torch.Tensor] = {}
    every = progress_every or max(1, steps // 50)
    reader = rt.ValueReader(device)

    def forward(img: torch.Tensor, *, train: bool) -> dict[str, torch.Tensor]:
        with _scope("featviz.transforms"):
            x = transform(img, generator) if train else tf.compose([], info.input_size)(img, generator)
            x = pre(x)
        with _scope("featviz.network"):
            acts = net(x, eager=not train)
        acts[obj.IMAGE] = img
        return acts

    def report(item: tuple[int, float] | None) -> None:
        if item is None:
            return
        done, value = item
        if value != value or value in (float("inf"), float("-inf")):
            raise OptimizationError(
                f"the objective became {value} at step {done}; lower optimizer.lr (now {lr}) "
                "or use param.output: sigmoid."
            )
        if progress is not None:
            progress(done, steps, value)

    if net.compiled is not None:
        t_compile = time.perf_counter()
        with torch.no_grad():
            shape = pre(transform(image(), torch.Generator().manual_seed(0))).shape
        net.warm_up(shape)
        compile_s = time.perf_counter() - t_compile
    else:
        compile_s = 0.0
    with rt.cudnn_autotune(device):
        t_start = time.perf_counter()
        for step in range(steps):
            opt.zero_grad(set_to_none=True)
            if set_progress is not None:
                set_progress(step / max(1, steps - 1))
            with _scope("featviz.image"):
                img = image()
            with redirected_relus(model) if step < relu_redirect else contextlib.nullcontext(0) as n_redirected:
                acts = forward(img, train=True)
            redirected = max(redirected, n_redirected)
            if step == 0:
                objective.check({k: v.shape for k, v in acts.items()})
            with _scope("featviz.objective"):
                groups = _sample_groups(acts, img.shape[0])
                values = _mean_over(objective, groups)
                total = values.sum()
                if penalties is not None:
                    total = total - _mean_over(penalties, groups).sum()
                loss = -total
            with _scope("featviz.backward"):
                (scaler.scale(loss) if scaler is not None else loss).backward()
            with _scope("featviz.optimizer"):
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
            if blur_every and (step + 1) % blur_every == 0:
                image.blur_(blur_sigma)
            curve[step] = values.detach().mean()
            done = step + 1
            if done in thresholds:
                with torch.no_grad():
                    snapshots[done] = image().detach().float().cpu()
            if done % every == 0 or done == steps:
                report(reader.push(done, curve[step]))
        report(reader.flush())
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t_opt = time.perf_counter() - t_start

    with torch.no_grad():
        final = image().detach()
        if not torch.isfinite(final).all():
            raise OptimizationError("the image became NaN/inf; lower optimizer.lr or use param.output: sigmoid.")
        final_values = objective(forward(final, train=False)).float().cpu()
    batch = final.shape[0]
    return RenderResult(
        images=final.float().cpu(),
        labels=[objective.label(b) or f"image {b}" for b in range(batch)],
        values=[float(v) for v in final_values],
        curve=[float(v) for v in curve.cpu()],
        snapshots=snapshots,
        description=objective.description,
        layers=list(objective.layers),
        model_info=info,
        device=str(device),
        precision=str(autocast_dtype).replace("torch.", "") if autocast_dtype else "fp32",
        steps=steps,
        seed=0,
        timings={"optimize_s": round(t_opt, 4), "step_ms": round(1000 * t_opt / steps, 3),
                 **({"compile_s": round(compile_s, 4)} if compile else {})},
        techniques={
            "optimizer": optimizer,
            "relu_redirect": {"steps": min(relu_redirect, steps), "modules": redirected},
            "samples_per_step": len(groups),
        },
        runtime={"channels_last": net.channels_last, "compiled": net.compiled is not None, "notes": net.notes},
    )
