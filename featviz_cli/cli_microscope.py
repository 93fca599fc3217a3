"""The Microscope's commands, ``featviz atlas`` and ``featviz faithfulness`` (registered by ``cli``, each
wrapped in its error boundary ``cli_common.command``).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from .cli_common import DeviceOpt, QuietOpt, SetOpt, display, say


def atlas(
    model: Annotated[str, typer.Argument(help="Model name, e.g. efficientnet_lite0 or torchvision/resnet50.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (the atlas's sweep and gallery).")],
    layers: Annotated[Optional[str], typer.Option(help="Comma-separated layers (default: every layer of --kind).")] = None,
    kind: Annotated[Optional[str], typer.Option(help="Module type of the layers, e.g. MBConvBlock or ReLU "
                                                "(default: the model's repeated blocks).")] = None,
    units: Annotated[str, typer.Option(help="Units of each layer: all, a range (0:8) or a list.")] = "all",
    steps: Annotated[int, typer.Option(help="Optimization steps per render.", min=1)] = 256,
    size: Annotated[Optional[int], typer.Option(help="Render size in pixels (default: param.size's).", min=8)] = None,
    images: Annotated[Optional[Path], typer.Option("--images", "-i", help="Photos: once every unit is done, "
                                                   "dataset examples and the faithfulness check too.")] = None,
    estimate: Annotated[bool, typer.Option("--estimate", help="Print the time estimate and stop.")] = False,
    device: DeviceOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Make an atlas of a whole model (channel, neuron and diverse renders of every unit of every block),
    saying first how long it will take; rerun to resume, shard with featviz sweep OUT/atlas.yaml --shard."""
    from . import sweep as sw
    from .sweep.atlas import SPEC_FILE, run_atlas

    chosen = [x.strip() for x in layers.split(",") if x.strip()] if layers else None
    with display(quiet, units=True) as progress, sw.interrupt_guard(say, sw.DEFAULT_GRACE_S) as stop:
        report = run_atlas(model, out, layers=chosen, kind=kind, units=units, steps=steps, size=size,
                           device=device or "auto", overrides=set_ or [], images=str(images) if images else None,
                           dry_run=estimate, notify=say, progress=progress, stop=stop)
    if report.sweep is None:
        typer.echo(str(Path(out) / SPEC_FILE))
        return
    sweep = report.sweep
    say(f"{sweep.done} of {sweep.total} render(s) done in {sweep.elapsed_s:.1f}s.")
    if sweep.interrupted:
        say("Interrupted; finished units are saved. Rerun the same command to resume.")
        raise typer.Exit(stop.exit_code)
    if sweep.failures:
        print(f"Error: {'; '.join(sweep.failures)}. Rerun the same command to finish.", file=sys.stderr)
        raise typer.Exit(1)
    typer.echo(str(sweep.index))

def faithfulness(
    directory: Annotated[Path, typer.Argument(help="A sweep's output directory, with featviz examples output in it.",
                                              exists=True, file_okay=False)],
    path: Annotated[Optional[str], typer.Option(metavar="LAYERS", help="Comma-separated earlier layers to compare "
                                                "at (default: up to 4 earlier layers of the unit's layer's type).")] = None,
    size: Annotated[Optional[int], typer.Option(help="Compare at this size (default: the renders').", min=8)] = None,
    random: Annotated[int, typer.Option(help="Random photos of the examples' folder in the baseline.", min=2)] = 16,
    threshold: Annotated[Optional[float], typer.Option(help="Flag renders whose path score is below this "
                                                       "(default 0.5; see docs/microscope.md).")] = None,
    device: DeviceOpt = None,
) -> None:
    """Measure how far to trust each unit's renders: their activation against the unit's dataset examples, and
    whether the network processes them like natural images on the way to the unit (resumable; rebuilds the gallery)."""
    from .faithfulness import run_faithfulness

    chosen = [x.strip() for x in path.split(",") if x.strip()] if path else None
    report = run_faithfulness(directory, device=device, size=size, random=random, path=chosen, notify=say,
                              **({"threshold": threshold} if threshold is not None else {}))
    say(f"{report.measured} unit(s) measured, {report.kept} kept from before, {report.flagged} flagged "
        f"off-distribution (path score below {report.threshold}).")
    typer.echo(str(report.index))


COMMANDS: tuple[tuple[str, Callable[..., None]], ...] = (("atlas", atlas), ("faithfulness", faithfulness))
