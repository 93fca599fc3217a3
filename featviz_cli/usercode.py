"""The user's own code named in a spec as ``'package.module:factory'``: import it and call it.

Models (``model.python``) and the generator parameterization (``param.generator.python``) name
a factory this way. featviz imports the module with the current directory on ``sys.path``,
finds the factory, calls it with the spec's kwargs and expects a ``torch.nn.Module`` back.
Every failure raises the caller's error, naming the spec field and the fix; a ``FactoryField``
says how that caller's messages read, so each field keeps its own wording.
"""
from __future__ import annotations

import contextlib
import difflib
import importlib
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Iterator

import torch.nn as nn

from .errors import FeatvizError

# (field, message) -> the exception to raise; ``SpecError`` itself fits.
ErrorFactory = Callable[[str, str], FeatvizError]


def one_line(exc: BaseException, limit: int = 240) -> str:
    """``Type: message`` of an exception on one line, shortened to ``limit`` characters."""
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class FactoryField:
    """A spec field naming a ``'package.module:factory'``, and how its error messages read.

    Each text is the end of one message, punctuation included:
    ``example`` after ``'x' is not 'package.module:factory'``; ``returned`` after
    ``t returned int, not a torch.nn.Module``. ``kwargs`` is the field to fix when the call
    raises, shown as ``t(**call_kwargs)`` (``call_kwargs`` defaults to ``kwargs``).
    ``import_failed``: None tells a missing module, a missing dependency and a module that
    raised apart, each with its own fix; a text gives every import failure one message,
    ``importing 'm' failed (error); <import_failed>``. With ``check_callable`` False a
    factory that is not callable fails when called. ``describe`` writes the exceptions.
    """

    name: str
    error: ErrorFactory
    example: str
    kwargs: str
    returned: str
    call_kwargs: str | None = None
    import_failed: str | None = None
    check_callable: bool = True
    describe: Callable[[BaseException], str] = one_line

    def fail(self, message: str) -> FeatvizError:
        """The caller's error for ``message`` about this field."""
        return self.error(self.name, message)


@contextlib.contextmanager
def cwd_on_path() -> Iterator[None]:
    """Put the current directory first on ``sys.path`` for the duration (a user's local module)."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def split_target(target: str, field: FactoryField) -> tuple[str, str]:
    """``"package.module:factory"`` -> ``("package.module", "factory")``; the field's error if malformed."""
    mod, sep, attr = target.strip().partition(":")
    if not sep or not all(part.isidentifier() for part in mod.split(".") + attr.split(".")):
        raise field.fail(f"{target!r} is not 'package.module:factory'{field.example}")
    return mod, attr


def import_module(mod: str, field: FactoryField) -> ModuleType:
    """Import ``mod`` with the current directory on the path; failures raise the field's error."""
    with cwd_on_path():
        importlib.invalidate_caches()
        try:
            return importlib.import_module(mod)
        except Exception as e:  # noqa: BLE001 - the user's module may raise anything at import
            raise _import_error(mod, e, field) from None


def _import_error(mod: str, e: Exception, field: FactoryField) -> FeatvizError:
    """The message for an import of ``mod`` that raised ``e``."""
    if field.import_failed is not None:
        return field.fail(f"importing {mod!r} failed ({field.describe(e)}); {field.import_failed}")
    if isinstance(e, ModuleNotFoundError) and e.name and (mod == e.name or mod.startswith(e.name + ".")):
        return field.fail(
            f"cannot find module {mod!r}; run featviz from the directory that holds it "
            "or add that directory to PYTHONPATH."
        )
    if isinstance(e, ModuleNotFoundError):
        return field.fail(f"importing {mod!r} failed ({field.describe(e)}); install what it imports.")
    return field.fail(f"importing {mod!r} raised {field.describe(e)}; fix that module.")


def resolve(module: ModuleType, mod: str, attr: str, field: FactoryField) -> Any:
    """``module.attr`` (dotted); the field's error, with close names, when it is missing."""
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise field.fail(f"{mod!r} has no attribute {attr!r}.{hint}")
        obj = getattr(obj, part)
    if field.check_callable and not callable(obj):
        raise field.fail(f"{mod}:{attr} is a {type(obj).__name__}, not a function or class to call.")
    return obj


def call_factory(target: str, factory: Any, kwargs: dict[str, Any], field: FactoryField) -> nn.Module:
    """``factory(**kwargs)``, which must return an ``nn.Module``; the field's error otherwise."""
    try:
        module = factory(**kwargs)
    except Exception as e:  # noqa: BLE001 - the user's code may raise anything
        shown = field.kwargs if field.call_kwargs is None else field.call_kwargs
        raise field.fail(
            f"{target}(**{shown}) raised {field.describe(e)}; fix the factory or {field.kwargs}."
        ) from None
    if not isinstance(module, nn.Module):
        raise field.fail(f"{target} returned {type(module).__name__}, not a torch.nn.Module{field.returned}")
    return module


def load_factory(target: str, kwargs: dict[str, Any], field: FactoryField) -> nn.Module:
    """Import the factory ``target`` names and return what ``factory(**kwargs)`` builds."""
    mod, attr = split_target(target, field)
    factory = resolve(import_module(mod, field), mod, attr, field)
    return call_factory(target, factory, kwargs, field)
