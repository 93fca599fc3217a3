"""The optimization loop. No printing and no file I/O: progress goes through a callback.

``render(spec)`` loads the model, has the recipe built (``recipe.build_recipe``) and calls
``optimize(model, info, recipe, execution)``, where the pieces meet; it builds the
``RenderResult`` once from what the loop returns.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import torch
import torch.nn as nn

from . import objectives as obj
from . import runtime as rt
from . import transforms as tf
from .config import Spec, check_render
from .errors import OptimizationError
from .models import ModelInfo, load_model
from .models.preprocess import Preprocess
from .optimizers import make_optimizer, set_lr
from .recipe import Recipe, build_recipe, check_layers
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
    #: With ``output.alpha``: (B, H, W) transparency maps in [0, 1] (see ``transparency``), else None.
    alpha: torch.Tensor | None = None
    #: With ``dataset.images``, ``render_to_dir`` puts the dataset examples pass here: (result, pages).
    examples: Any = None

    def _repr_png_(self) -> bytes:
        """The images as a labelled grid (PNG): how a notebook shows a result."""
        from .outputs import png_bytes, preview_grid

        return png_bytes(preview_grid(self.images.permute(0, 2, 3, 1), self.labels))


@dataclass
class Optimized:
    """What ``optimize`` produced: the final images and values, the curve, snapshots, and how it ran."""

    images: torch.Tensor
    labels: list[str]
    values: list[float]
    curve: list[float]
    snapshots: dict[int, torch.Tensor]
    timings: dict[str, float]
    techniques: dict[str, Any]
    runtime: dict[str, object]
    alpha: torch.Tensor | None = None


#: How the transparency maps are normalized, for meta.json.
ALPHA_DEFINITION = ("|d loss / d image| summed over colour channels and steps, per image divided by its "
                    "99th percentile and clipped to [0, 1]")


def transparency(accumulated: torch.Tensor) -> torch.Tensor:
    """(B, H, W) accumulated gradient magnitudes as maps in [0, 1]: each divided by its 99th percentile, clipped.

    The percentile (not the maximum) keeps a few extreme pixels from making the rest transparent.
    """
    flat = accumulated.float().flatten(1)
    k = max(1, math.ceil(0.99 * flat.shape[1]))  # kthvalue: torch.quantile refuses more than 2**24 values
    scale = flat.kthvalue(k, dim=1).values.clamp_min(torch.finfo(torch.float32).tiny)
    return (flat / scale[:, None]).clamp(0, 1).view_as(accumulated)


def render(
    spec: Spec,
    *,
    model: nn.Module | None = None,
    info: ModelInfo | None = None,
    progress: Progress | None = None,
    progress_every: int = 0,
    objective: obj.Objective | None = None,
) -> RenderResult:
    """Render the images a spec describes; a preloaded ``model``/``info`` skips loading. A prebuilt
    ``objective`` replaces the spec's terms (``spec.param.batch`` images), so they may be a sweep's."""
    if objective is None:
        check_render(spec)
    t0 = time.perf_counter()
    execution = rt.Execution.resolve(spec.device, spec.precision, spec.channels_last, spec.compile)
    if model is None or info is None:
        model, info = load_model(spec.model)
    t_load = time.perf_counter() - t0
    if objective is None:
        check_layers(spec, model)
    recipe = build_recipe(spec, info, execution.device, objective)
    run = optimize(model, info, recipe, execution, progress=progress, progress_every=progress_every)
    return RenderResult(
        images=run.images,
        labels=run.labels,
        values=run.values,
        curve=run.curve,
        snapshots=run.snapshots,
        description=recipe.objective.description,
        layers=list(recipe.objective.layers),
        model_info=info,
        device=str(execution.device),
        precision=execution.precision,
        steps=recipe.steps,
        seed=spec.seed,
        timings={**run.timings, "load_s": round(t_load, 4)},
        spec=spec,
        techniques={**recipe.techniques, **run.techniques},
        runtime=run.runtime,
        alpha=run.alpha,
    )


#: Named ranges in a torch.profiler trace: where each step's time goes (free when no profiler runs).
_scope = torch.profiler.record_function


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


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device``, in eval mode, its weights frozen (a render never changes them)."""
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def optimize(
    model: nn.Module,
    info: ModelInfo,
    recipe: Recipe,
    execution: rt.Execution,
    *,
    progress: Progress | None = None,
    progress_every: int = 0,
) -> Optimized:
    """Maximize the recipe's objective (minus its penalties) over the parameters of its image.

    The network runs as ``execution`` says and rewritten as ``runtime.rewritten`` does (the
    user's model is restored afterwards, its weights' memory layout too). For the first ``recipe.relu_redirect`` steps the
    model's ReLU/ReLU6 modules pass redirected gradients. A transform may return several
    samples per image (MACO's crops): the objective is then averaged over them.
    """
    device = execution.device
    model = prepare_model(model, device)
    host_allocator = rt.tune_host_allocator() if device.type == "cpu" else "system"
    pre = Preprocess(info).to(device)
    probe = pre(torch.rand(1, 3, info.input_size, info.input_size, generator=torch.Generator().manual_seed(0)).to(device))
    with rt.kept_memory_format(model), rt.rewritten(model, recipe.layers, probe, device, execution.dtype) as rewrites:
        run = _loop(model, info, pre, recipe, execution, progress, progress_every)
    run.runtime.update(rewrites)
    run.runtime["host_allocator"] = host_allocator
    return run


def _loop(model: nn.Module, info: ModelInfo, pre: nn.Module, recipe: Recipe, execution: rt.Execution,
          progress: Progress | None, progress_every: int) -> Optimized:
    """The steps themselves, on the rewritten network."""
    device, dtype, steps = execution.device, execution.dtype, recipe.steps
    objective, penalties, image, transform = recipe.objective, recipe.penalties, recipe.image, recipe.transform
    generator, schedule = recipe.generator, recipe.schedule
    net = rt.Network(model, recipe.layers, device, dtype=dtype,
                     channels_last=rt.resolve_channels_last(execution.channels_last, device), compile=execution.compile)
    opt = make_optimizer(recipe.optimizer, image.params, recipe.lr)
    set_progress = getattr(transform, "set_progress", None)
    redirected = 0
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    curve = torch.zeros(steps, device=device)
    snapshots: dict[int, torch.Tensor] = {}
    every = progress_every or max(1, steps // 50)
    reader = rt.ValueReader(device)
    plain = tf.compose([], info.input_size)
    gradient_sum: torch.Tensor | None = None

    def accumulate(grad: torch.Tensor) -> None:  # the image's gradient, from the backward that runs anyway
        nonlocal gradient_sum
        g = grad.detach().abs().sum(1, dtype=torch.float32)
        gradient_sum = g if gradient_sum is None else gradient_sum.add_(g)

    def forward(img: torch.Tensor, *, train: bool) -> dict[str, torch.Tensor]:
        with _scope("featviz.transforms"):
            x = pre(transform(img, generator) if train else plain(img, generator))
        with _scope("featviz.network"):
            acts = net(x, eager=not train)
        acts[obj.IMAGE] = img
        return acts

    def probe(images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Activations of untransformed images at ``layers``, for terms that compare with a photo (obj.Probe)."""
        return net(pre(plain(images.to(device), generator)), layers=layers)

    for term in (objective, penalties):
        if term is not None:
            term.prepare(probe)

    def report(item: tuple[int, float] | None) -> None:
        if item is None:
            return
        done, value = item
        if value != value or value in (float("inf"), float("-inf")):
            raise OptimizationError(
                f"the objective became {value} at step {done}; lower optimizer.lr (now {recipe.lr}) "
                "or use param.output: sigmoid."
            )
        if progress is not None:
            progress(done, steps, value)

    compile_s = 0.0
    if net.compiled is not None:
        t_compile = time.perf_counter()
        with torch.no_grad():
            shape = pre(transform(image(), torch.Generator().manual_seed(0))).shape
        net.warm_up(shape)
        compile_s = time.perf_counter() - t_compile
    with rt.cudnn_autotune(device):
        t_start = time.perf_counter()
        for step in range(steps):
            opt.zero_grad(set_to_none=True)
            if set_progress is not None:
                set_progress(step / max(1, steps - 1))
            with _scope("featviz.image"):
                img = image()
            if recipe.alpha and img.requires_grad:
                img.register_hook(accumulate)
            with redirected_relus(model) if step < recipe.relu_redirect else contextlib.nullcontext(0) as n_redirected:
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
                if not schedule.is_constant:
                    set_lr(opt, recipe.lr * schedule.factor(step))
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
            if recipe.blur_every and (step + 1) % recipe.blur_every == 0:
                image.blur_(recipe.blur_sigma)
            curve[step] = values.detach().mean()
            done = step + 1
            if done in recipe.thresholds:
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
    return Optimized(
        images=final.float().cpu(),
        labels=[objective.label(b) or f"image {b}" for b in range(final.shape[0])],
        values=[float(v) for v in final_values],
        curve=[float(v) for v in curve.cpu()],
        snapshots=snapshots,
        timings={"optimize_s": round(t_opt, 4), "step_ms": round(1000 * t_opt / steps, 3),
                 **({"compile_s": round(compile_s, 4)} if execution.compile else {})},
        techniques={
            "optimizer": recipe.optimizer,
            "relu_redirect": {"steps": min(recipe.relu_redirect, steps), "modules": redirected},
            "samples_per_step": len(groups),
            **({"alpha": ALPHA_DEFINITION} if recipe.alpha else {}),
        },
        runtime={"channels_last": net.channels_last, "compiled": net.compiled is not None, "notes": net.notes},
        alpha=None if gradient_sum is None else transparency(gradient_sum).cpu(),
    )
