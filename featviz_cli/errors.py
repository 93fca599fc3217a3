"""Exceptions users see. Each message says what is wrong and how to fix it.

The CLI maps them to exit codes: input errors (spec, model, layer, unit,
checkpoint, input directory) exit 2, failures at run time (NaN, unwritable output) exit 1.
"""
from __future__ import annotations


class FeatvizError(Exception):
    """Base class: a one-line, user-facing message; ``exit_code`` for the CLI."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SpecError(FeatvizError):
    """The experiment spec is invalid; ``field`` is the dotted YAML path."""

    exit_code = 2

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class ModelError(FeatvizError):
    """A model cannot be found, built or loaded (unknown name, bad checkpoint...)."""

    exit_code = 2


class LayerError(FeatvizError):
    """A layer name does not exist in the model, or a unit is out of range."""

    exit_code = 2


class InputError(FeatvizError):
    """A file or directory given to a command is not what the command reads (e.g. not a sweep's directory)."""

    exit_code = 2


class OutputError(FeatvizError):
    """The output directory or a file in it cannot be written."""

    exit_code = 1


class OptimizationError(FeatvizError):
    """The optimization failed (the objective or the image became NaN/inf)."""

    exit_code = 1
