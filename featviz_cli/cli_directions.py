"""The commands beyond single neurons: ``factors``, ``caricature``, ``grid`` and ``activation-atlas``.

Registered on the app by ``cli.py`` (each wrapped in its error boundary ``cli_common.command``); each
parses, calls ``featviz_cli.directions`` and prints the page it wrote on stdout.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from .cli_common import QuietOpt, SetOpt, StepsOpt, display, load, say

ConfigArg = Annotated[Path, typer.Argument(help="YAML experiment spec (model, param, transforms, steps; the first "
                                                "objective term's layer).", exists=True, dir_okay=False, readable=True)]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output directory.")]
ImagesOpt = Annotated[Path, typer.Option("--images", "-i", help="Folder of images, searched recursively.")]
PowOpt = Annotated[float, typer.Option("--cossim-pow", min=0, help="Power of the cosine similarity multiplying the "
                                                                   "dot product (Lucid's direction_neuron).")]
SamplesOpt = Annotated[int, typer.Option(min=1, help="Activation vectors kept in the sample (reservoir sampling of "
                                                      "random positions: memory does not grow with the folder).")]
CropsOpt = Annotated[int, typer.Option(min=0, help="Random crops of each image added to the sample (small folders).")]


def factors(config: ConfigArg, images: ImagesOpt, out: OutOpt = Path("factors"),
            n: Annotated[int, typer.Option("--n", help="Number of factors (at most the layer's channels).")] = 16,
            method: Annotated[str, typer.Option(help="nmf, pca or ica (scikit-learn's NMF, PCA, FastICA).")] = "nmf",
            samples: SamplesOpt = 20000, crops: CropsOpt = 0,
            maps: Annotated[int, typer.Option(min=0, help="Images whose spatial maps the page shows.")] = 4,
            render: Annotated[bool, typer.Option("--render/--no-render", help="Render the factors "
                                                                               "(a dictionary sweep).")] = True,
            cossim_pow: PowOpt = 1.0, steps: StepsOpt = None, set_: SetOpt = None, quiet: QuietOpt = False) -> None:
    """Factorize a layer's activations over a folder (neuron groups): the N x C matrix, maps and renders."""
    from .directions.neuron_groups import run_factors

    spec = load(config, set_, steps=steps)
    with display(quiet, units=True) as progress:
        page = run_factors(spec, images, out, n=n, method=method, samples=samples, crops=crops, maps=maps,
                           render_steps=render, cossim_pow=cossim_pow, progress=progress, notify=say)
    say(f"{n} {method} factors: {Path(out) / 'factors.npy'} (vector_file of a dictionary sweep).")
    typer.echo(str(page))


def caricature(config: ConfigArg, image: Annotated[Path, typer.Option("--image", help="The photo to caricature.")],
               out: OutOpt = Path("caricature"),
               layers: Annotated[Optional[str], typer.Option(help="Comma-separated layers (default: a sweep's in "
                                                                   "--out, else the spec's).")] = None,
               cossim_pow: PowOpt = 1.0, steps: StepsOpt = None, set_: SetOpt = None, quiet: QuietOpt = False) -> None:
    """Render caricatures of a photo (feature inversion), one layer per batch element, into OUT/caricatures/."""
    from .directions.caricature import run_caricatures

    spec = load(config, set_, steps=steps)
    chosen = [x.strip() for x in layers.split(",") if x.strip()] if layers is not None else None
    with display(quiet) as progress:
        path, rendered = run_caricatures(spec, image, out, layers=chosen, cossim_pow=cossim_pow, progress=progress)
    say("Rendered the caricatures." if rendered else "The caricatures are already there (same settings); kept.")
    typer.echo(str(path))


def grid(config: ConfigArg, image: Annotated[Path, typer.Option("--image", help="The photo.")],
         out: OutOpt = Path("grid"),
         layer: Annotated[Optional[str], typer.Option(help="The layer (default: the spec's first term's).")] = None,
         shared: Annotated[bool, typer.Option("--shared/--no-shared", help="Neighbouring cells share "
                                                                            "low-resolution parameters.")] = True,
         cossim_pow: PowOpt = 1.0, steps: StepsOpt = None, set_: SetOpt = None, quiet: QuietOpt = False) -> None:
    """Render the activation grid of a photo: the activation vector at every position of a layer, tiled."""
    from .directions.grid import run_grid
    from .directions.neuron_groups import spec_layer

    spec = load(config, set_, steps=steps)
    with display(quiet) as progress:
        page = run_grid(spec, image, out, layer=layer or spec_layer(spec), cossim_pow=cossim_pow, shared=shared,
                        progress=progress)
    typer.echo(str(page))


def activation_atlas(config: ConfigArg, images: ImagesOpt, out: OutOpt = Path("atlas"),
                     grid_size: Annotated[int, typer.Option("--grid", min=1, help="Cells per side of the grid.")] = 12,
                     samples: SamplesOpt = 5000, crops: CropsOpt = 0,
                     min_count: Annotated[int, typer.Option(min=1, help="Cells with fewer points are dropped.")] = 3,
                     klass: Annotated[Optional[str], typer.Option("--class", help="Only the positions most attributed "
                                                                  "to this class (index or name).")] = None,
                     layout: Annotated[str, typer.Option(help="auto (UMAP where umap-learn is installed, else "
                                                              "t-SNE), umap or tsne.")] = "auto",
                     cossim_pow: PowOpt = 1.0, steps: StepsOpt = None, set_: SetOpt = None,
                     quiet: QuietOpt = False) -> None:
    """Build an activation atlas of a layer over a folder: layout, grid cells, their renders, a zoomable page."""
    from .directions.atlas import run_atlas

    spec = load(config, set_, steps=steps)
    cls: int | str | None = int(klass) if klass is not None and klass.isdigit() else klass
    with display(quiet, units=True) as progress:
        page = run_atlas(spec, images, out, grid=grid_size, samples=samples, crops=crops, min_count=min_count,
                         klass=cls, layout=layout, cossim_pow=cossim_pow, progress=progress, notify=say)
    typer.echo(str(page))


#: (command name, function), registered by ``cli.py``.
COMMANDS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("factors", factors), ("caricature", caricature), ("grid", grid), ("activation-atlas", activation_atlas),
)
