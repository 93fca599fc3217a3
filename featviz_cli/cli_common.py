"""What every command module of the CLI shares: the stderr console, the error boundary, the option
types, the spec loader, the diagnostic printer and the progress display.

``cli`` defines the app and the core commands; ``cli_directions`` and ``cli_microscope`` define more
commands with these pieces, and ``cli`` registers them all, each wrapped in :func:`command`.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .errors import FeatvizError
from .progress import ProgressDisplay

err = Console(stderr=True, highlight=False, soft_wrap=True)
#: ``--debug``: let errors raise with their traceback (set by the app callback).
state = {"debug": False}

ConfigArg = Annotated[
    Path, typer.Argument(help="YAML experiment spec.", exists=True, dir_okay=False, readable=True)
]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Output directory (overrides output.dir).")]
StepsOpt = Annotated[Optional[int], typer.Option(help="Optimization steps (overrides steps).", min=1)]
DeviceOpt = Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
SeedOpt = Annotated[Optional[int], typer.Option(help="Random seed.", min=0)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
SetOpt = Annotated[
    Optional[list[str]], typer.Option("--set", "-s", metavar="KEY.PATH=VALUE", help="Override a spec value (repeatable), e.g. --set param.size=64.")
]


def command(fn: Callable[..., None]) -> Callable[..., None]:
    """A command's error boundary: library errors become one ``Error:`` line on stderr and an exit code."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except FeatvizError as e:
            if state["debug"]:
                raise
            if err.is_terminal:
                err.print(f"[bold red]Error:[/] {escape(str(e))}")
            else:
                print(f"Error: {e}", file=sys.stderr)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            print("Interrupted; files already written are complete.", file=sys.stderr)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as e:  # noqa: BLE001 - the boundary: anything else is reported in one line
            if state["debug"]:
                raise
            print(f"Error: unexpected {type(e).__name__}: {e} (rerun with --debug for the traceback)", file=sys.stderr)
            raise typer.Exit(1) from None

    return run


def load(config: Path, overrides: list[str] | None, *, out: Path | None = None, **cli: Any) -> Any:
    """Load and validate a spec with ``--set`` overrides and the typed CLI options; ``out`` sets output.dir."""
    from .config import load_spec

    spec = load_spec(config, overrides or [], **cli)
    if out is not None:
        spec.output.dir = str(out)
    return spec


def say(message: str) -> None:
    """A diagnostic line on stderr (through rich on a terminal, so it does not break a progress bar)."""
    if err.is_terminal:
        err.print(escape(message))
    else:
        print(message, file=sys.stderr, flush=True)


def display(quiet: bool, **kwargs: Any) -> ProgressDisplay:
    """Progress on stderr (see ``progress.ProgressDisplay``)."""
    return ProgressDisplay(err, quiet, **kwargs)
