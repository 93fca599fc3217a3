"""The ``featviz`` command line: parse, call the library, map errors to exit codes.

Exit codes: 0 success; 1 failure at run time (NaN, unwritable output, unexpected
error); 2 bad input (spec, model, layer, unit, checkpoint); 130 interrupted; 143 a
sweep stopped by SIGTERM (within its grace period, the manifest rebuilt).
Diagnostics go to stderr, results (paths, listings, schema) to stdout.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from . import __version__, cli_directions, cli_microscope
from .cli_common import (ConfigArg, DeviceOpt, OutOpt, QuietOpt, SeedOpt, SetOpt, StepsOpt, command, display, load,
                         say, state)
from .errors import SpecError

app = typer.Typer(
    name="featviz",
    help="Feature visualization by optimization for PyTorch vision models.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain usage errors: one greppable line in CI logs
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"featviz {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Feature visualization by optimization for PyTorch vision models."""
    state["debug"] = debug


@app.command()
@command
def render(
    config: Annotated[Optional[Path], typer.Argument(
        help="YAML experiment spec (or --example NAME).", exists=True, dir_okay=False, readable=True)] = None,
    out: OutOpt = None,
    steps: StepsOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
    example: Annotated[Optional[str], typer.Option(
        metavar="NAME", help="Render a spec shipped inside featviz instead of CONFIG: quickstart (four classes of "
                             "the embedded EfficientNet-Lite0), into ./featviz-NAME unless --out.")] = None,
) -> None:
    """Render the images a spec describes into its output directory."""
    from .api import render_to_dir

    if (config is None) == (example is None):
        raise SpecError("CONFIG", "give a spec file or --example NAME (e.g. --example quickstart)"
                        + (", not both." if config else "."))
    if example is not None:
        config, out = _bundled_spec(example), out or Path(f"featviz-{example}")
    spec = load(config, set_, steps=steps, device=device, seed=seed, out=out)
    with display(quiet) as progress:
        examples_progress = progress.stage("images", "images/s") if progress else None
        result, files = render_to_dir(spec, spec.output.dir, progress=progress, examples_progress=examples_progress,
                                      notify=None if quiet else say)
    out_dir = Path(spec.output.dir)
    grid = out_dir / "grid.png"
    print(f"Rendered {len(result.labels)} image(s) in {result.timings['optimize_s']:.1f}s "
          f"on {result.device}: {result.description}", file=sys.stderr)
    typer.echo(str(grid if "grid.png" in files else out_dir / "meta.json"))
    if result.examples is not None:
        _report_examples(*result.examples)


def _bundled_spec(name: str) -> Path:
    """The spec ``name`` shipped inside the package (``featviz_cli/specs/<name>.yaml``)."""
    from importlib.resources import files

    root = Path(str(files("featviz_cli") / "specs"))
    shipped = sorted(p.stem for p in root.glob("*.yaml"))
    if name not in shipped:
        raise SpecError("--example", f"{name!r} is not a bundled example; choose one of: {', '.join(shipped)}.")
    return root / f"{name}.yaml"


VALIDATE_FOR = ("render", "sweep", "examples")


@app.command()
@command
def validate(
    config: ConfigArg,
    set_: SetOpt = None,
    for_: Annotated[str, typer.Option("--for", metavar="COMMAND", help=(
        "The command the spec is for: render (default), sweep or examples; the verdict is that command's "
        "(e.g. units: 0:16 is a sweep's). Checks that need the model (layer names, unit ranges) run when it runs."))] = "render",
) -> None:
    """Check a spec without loading any model."""
    from .config import check_render

    if for_ not in VALIDATE_FOR:
        raise SpecError("--for", f"{for_!r} is not a command that takes a spec; use one of: {', '.join(VALIDATE_FOR)}.")
    spec = load(config, set_)
    note = ""
    if for_ == "render":
        check_render(spec)
    elif for_ == "sweep":
        from .sweep.plan import sweep_term

        sweep_term(spec)
        note = " for 'featviz sweep'"
    else:
        note = " for 'featviz examples'" + ("" if spec.dataset.images else " (give it --images DIR: no dataset.images)")
    terms = ", ".join(f"{t.type} {t.layer or 'output'}" for t in spec.objective)
    typer.echo(f"OK: {config} (model {spec.model.name}; {terms}; {spec.steps} steps){note}")


@app.command()
@command
def layers(
    model: Annotated[str, typer.Argument(help="Model name, e.g. efficientnet_lite0 or torchvision/resnet50.")],
    weights: Annotated[Optional[str], typer.Option(help="Weights to load (default: none; shapes do not depend on them).")] = "none",
    checkpoint: Annotated[Optional[Path], typer.Option(help="Local checkpoint (state dict or TorchScript).")] = None,
    python: Annotated[Optional[str], typer.Option(help="package.module:factory building your model.")] = None,
    size: Annotated[Optional[int], typer.Option(help="Input size for the shape pass (default: the model's).", min=8)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every addressable layer with its output shape (one forward pass)."""
    from .api import model_layers
    from .config import ModelSpec

    spec = ModelSpec(name=model, weights=weights, checkpoint=str(checkpoint) if checkpoint else None, python=python)
    info, n, rows = model_layers(spec, size)
    if as_json:
        typer.echo(json.dumps([{"name": r.name, "type": r.type, "shape": r.shape} for r in rows], indent=1))
        return
    typer.echo(f"# {info.name}: input 3x{n}x{n}; shapes are channels x H x W (or tokens x C)")
    width = max((len(r.name) for r in rows), default=10)
    for r in rows:
        shape = " x ".join(map(str, r.shape)) if r.shape else "-"
        typer.echo(f"{r.name:<{width}}  {r.type:<22} {shape}")


@app.command()
@command
def examples(
    config: ConfigArg,
    images: Annotated[Optional[Path], typer.Option("--images", "-i", help="Folder of images, searched recursively (overrides dataset.images).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output directory (overrides output.dir).")] = None,
    k: Annotated[Optional[int], typer.Option("--k", help="Examples per unit (overrides dataset.k).", min=1)] = None,
    bottom: Annotated[Optional[bool], typer.Option("--bottom/--no-bottom", help="Also keep the bottom-k (most negative).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Image decoding worker processes (overrides dataset.workers).", min=0)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per forward pass (overrides dataset.batch_size).", min=1)] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Ignore a saved checkpoint and start the pass over.")] = False,
    device: DeviceOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Find the dataset images that excite each unit most, with crops sized by the receptive field."""
    from .examples import run_examples

    spec = load(config, set_, device=device, **{
        "dataset.images": str(images) if images is not None else None, "dataset.k": k, "dataset.bottom": bottom,
        "dataset.workers": workers, "dataset.batch_size": batch_size,
    }, out=out)
    with display(quiet, what="images", value_name="images/s") as progress:
        result, paths = run_examples(spec, restart=restart, progress=progress, notify=None if quiet else say)
    _report_examples(result, paths)


def _report_examples(result: Any, paths: dict[str, Path]) -> None:
    """The summary line of a dataset-examples pass on stderr, and each layer's page on stdout."""
    from .examples.layout import describe_files

    speed = ("all from the checkpoint" if result.resumed_from == result.files
             else f"at {result.timings['images_per_s']:.1f} images/s")
    repaired = f"; repaired {describe_files(result.repaired)}" if result.repaired else ""
    say(f"Ranked {result.images_seen} image(s) for {len(result.layers)} layer(s) "
         f"({result.unreadable} unreadable), {speed}{repaired}")
    for path in paths.values():
        typer.echo(str(path.parent / "index.html"))


@app.command()
@command
def sweep(
    config: ConfigArg,
    out: OutOpt = None,
    steps: StepsOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    set_: SetOpt = None,
    shard: Annotated[Optional[str], typer.Option(
        help="Render only shard I of N (I/N, numbered from 0), e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT.")] = None,
    devices: Annotated[Optional[str], typer.Option(
        help="One worker process per device sharing the work: cuda:0,cuda:1, cpu,cpu, or auto (every GPU).")] = None,
    new_run: Annotated[bool, typer.Option(
        "--new-run", help="If the output directory holds a sweep of another spec, move it to OUT/archive/ first.")] = False,
    grace: Annotated[Optional[float], typer.Option(
        min=0, envvar="FEATVIZ_GRACE", metavar="SECONDS",
        help="After SIGTERM, stop within this many seconds (default 30): the batch in progress is saved if it "
             "can be within 3/4 of them, else abandoned; then the manifest is rebuilt and the exit code is 143.")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Render every unit of the spec's layers in batches: resumable, shardable, with an HTML gallery."""
    from . import sweep as sw

    spec = load(config, set_, steps=steps, device=device, seed=seed, out=out)
    part = sw.parse_shard(shard) if shard is not None else (0, 1)
    workers = sw.parse_devices(devices, spec.device)
    grace_s = sw.DEFAULT_GRACE_S if grace is None else grace
    with display(quiet, units=True) as progress, sw.interrupt_guard(say, grace_s) as stop:
        report = sw.run_sweep(spec, spec.output.dir, shard=part, devices=workers, new_run=new_run,
                              progress=progress, stop=stop, notify=say)
    where = f" (shard {part[0]}/{part[1]})" if part[1] > 1 else ""
    if report.abandoned:
        say(f"Abandoned {len(report.abandoned)} batch(es) in progress: they could not be saved within the "
             f"grace period.")
    say(f"{report.done} of {report.total} unit(s){where} done: {len(report.rendered)} rendered now, "
         f"{report.done_before} before, in {report.elapsed_s:.1f}s on {', '.join(report.devices)}.")
    if report.interrupted:
        if stop.exit_code == sw.EXIT_TERMINATED:
            say("Terminated; finished units are saved and the manifest is rebuilt. Rerun the same command to resume.")
        else:
            say("Interrupted; finished units are saved. Rerun the same command to resume.")
        raise typer.Exit(stop.exit_code)
    if report.failures:
        print(f"Error: {'; '.join(report.failures)}; {report.total - report.done} unit(s) not rendered. "
              "Rerun the same command to finish them.", file=sys.stderr)
        raise typer.Exit(1)
    typer.echo(str(report.index))


@app.command()
@command
def spectrum(
    folder: Annotated[Path, typer.Argument(help="Folder of photos (searched recursively: JPEG, PNG, WebP, ...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The spectrum file to write (for param.spectrum).")] = Path(
        "spectrum.pt"
    ),
    size: Annotated[int, typer.Option(help="Photos are resized and centre-cropped to this size first.", min=8)] = 256,
) -> None:
    """Compute the mean magnitude spectrum of a folder of photos, for MACO (param.type: maco)."""
    from .params.spectrum import compute_spectrum, save_spectrum

    result = compute_spectrum(folder, size)
    save_spectrum(result, out)
    skipped = f", {result['skipped']} unreadable file(s) skipped" if result["skipped"] else ""
    print(f"Spectrum of {result['images']} image(s) at {size} px{skipped}.", file=sys.stderr)
    typer.echo(str(out))


@app.command()
@command
def gallery(
    directory: Annotated[Path, typer.Argument(help="Output directory of a sweep.", exists=True, file_okay=False)],
    page_size: Annotated[Optional[int], typer.Option(help="Units per contact sheet and layer page.", min=1)] = None,
) -> None:
    """Rebuild a sweep's manifest, contact sheets and HTML gallery from whatever its shards have written."""
    from .sweep import rebuild

    result = rebuild(directory, page_size=page_size)
    m = result.manifest
    say(f"{m['done']} of {m['total']} unit(s) done, {m['pending']} pending, {m['corrupt']} corrupt.")
    typer.echo(str(result.index))


@app.command()
@command
def schema() -> None:
    """Print the JSON Schema of the spec (for editor validation and completion)."""
    from .config import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


# factors, caricature, grid, activation-atlas; atlas, faithfulness
for _name, _fn in cli_directions.COMMANDS + cli_microscope.COMMANDS:
    app.command(_name)(command(_fn))


def main() -> None:
    """Console-script entry point; ``--debug`` is accepted anywhere on the line."""
    if "--debug" in sys.argv[2:]:
        sys.argv[1:] = ["--debug"] + [a for a in sys.argv[1:] if a != "--debug"]
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
