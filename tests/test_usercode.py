"""Importing and calling the user's ``'package.module:factory'``, in the wording of each spec field.

Two wordings are checked message by message: the models' (``model.python``, ModelError) and the
generator parameterization's (``param.generator.python``, SpecError), as users read them today.
"""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch.nn as nn

from featviz_cli.errors import FeatvizError, ModelError, SpecError
from featviz_cli.models.python import FIELD as MODEL
from featviz_cli.params.generator import PYTHON_FIELD
from featviz_cli.usercode import (
    FactoryField,
    call_factory,
    cwd_on_path,
    import_module,
    load_factory,
    one_line,
    resolve,
    split_target,
)

USER_MODULE = '''
import torch.nn as nn


def build(n=2):
    return nn.Linear(n, n)


def broken():
    raise RuntimeError("boom\\nsecond line " + "x" * 300)


def not_a_module():
    return 42


NOT_CALLABLE = 3


class Ns:
    inner = staticmethod(lambda: nn.Identity())
'''


#: The generator parameterization's own wording, as the generator declares it.
GENERATOR = PYTHON_FIELD


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Name of a fresh module in the current directory, plus one that lacks a dependency and one that raises."""
    name = f"fvz_uc_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    (tmp_path / f"{name}_dep.py").write_text("import no_such_dependency_fvz\n")
    (tmp_path / f"{name}_raises.py").write_text("raise ValueError('bad at import')\n")
    monkeypatch.chdir(tmp_path)
    yield name
    for suffix in ("", "_dep", "_raises"):
        sys.modules.pop(name + suffix, None)


def error(field: FactoryField, target: str, kwargs: dict[str, Any] | None = None) -> FeatvizError:
    """The error ``load_factory`` raises for ``target``, checked to be the field's type, on one line."""
    with pytest.raises(FeatvizError) as e:
        load_factory(target, kwargs or {}, field)
    assert type(e.value) is (ModelError if field is MODEL else SpecError)
    assert "\n" not in str(e.value)
    return e.value


def test_one_line() -> None:
    assert one_line(RuntimeError("a\n  b")) == "RuntimeError: a b"
    assert one_line(KeyError()) == "KeyError"
    long = one_line(ValueError("x" * 300), limit=40)
    assert long == "ValueError: " + "x" * 25 + "..." and len(long) == 40


def test_cwd_on_path_is_first_then_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    with cwd_on_path():
        assert sys.path[0] == os.getcwd()
    assert sys.path == before
    monkeypatch.syspath_prepend(str(tmp_path))
    before = list(sys.path)
    with cwd_on_path():  # already there: left as it was
        assert sys.path == before
    assert sys.path == before


def test_loads_and_calls_with_kwargs(user: str) -> None:
    before = list(sys.path)
    for field in (MODEL, GENERATOR):
        net = load_factory(f" {user}:build ", {"n": 3}, field)
        assert isinstance(net, nn.Linear) and net.in_features == 3
        assert isinstance(load_factory(f"{user}:Ns.inner", {}, field), nn.Identity)
    assert sys.path == before


def test_the_steps_one_by_one(user: str) -> None:
    mod, attr = split_target(f"{user}:Ns.inner", MODEL)
    assert (mod, attr) == (user, "Ns.inner")
    factory = resolve(import_module(mod, MODEL), mod, attr, MODEL)
    assert isinstance(call_factory(f"{mod}:{attr}", factory, {}, MODEL), nn.Identity)


@pytest.mark.parametrize("target", ["nocolon", "mod:", ":build", "my mod:build", "mod:build:x", "mod:1x"])
def test_malformed_target(target: str) -> None:
    assert str(error(MODEL, target)) == (
        f"model.python: {target!r} is not 'package.module:factory'; write e.g. 'mymodels:build_net' "
        "for build_net() in mymodels.py in the current directory.")
    e = error(GENERATOR, target)
    assert e.field == "param.generator.python"
    assert str(e) == (f"param.generator.python: {target!r} is not 'package.module:factory', "
                      "e.g. 'mygen:build' for build() in mygen.py.")


def test_import_errors_models_tell_three_cases_apart(user: str) -> None:
    hint = "run featviz from the directory that holds it or add that directory to PYTHONPATH."
    assert str(error(MODEL, "no_such_module_fvz:build")) == (
        f"model.python: cannot find module 'no_such_module_fvz'; {hint}")
    assert str(error(MODEL, "no_such_pkg_fvz.sub:build")) == (
        f"model.python: cannot find module 'no_such_pkg_fvz.sub'; {hint}")
    assert str(error(MODEL, f"{user}_dep:build")) == (
        f"model.python: importing '{user}_dep' failed (ModuleNotFoundError: No module named "
        "'no_such_dependency_fvz'); install what it imports.")
    assert str(error(MODEL, f"{user}_raises:build")) == (
        f"model.python: importing '{user}_raises' raised ValueError: bad at import; fix that module.")


def test_import_errors_generator_one_message(user: str) -> None:
    hint = "run featviz from the directory that holds it or add that directory to PYTHONPATH."
    assert str(error(GENERATOR, "no_such_module_fvz:build")) == (
        "param.generator.python: importing 'no_such_module_fvz' failed (ModuleNotFoundError: No module named "
        f"'no_such_module_fvz'); {hint}")
    assert str(error(GENERATOR, f"{user}_dep:build")) == (
        f"param.generator.python: importing '{user}_dep' failed (ModuleNotFoundError: No module named "
        f"'no_such_dependency_fvz'); {hint}")
    assert str(error(GENERATOR, f"{user}_raises:build")) == (
        f"param.generator.python: importing '{user}_raises' failed (ValueError: bad at import); {hint}")


def test_missing_attribute_with_close_names(user: str) -> None:
    for field in (MODEL, GENERATOR):
        assert str(error(field, f"{user}:buld")) == (
            f"{field.name}: '{user}' has no attribute 'buld'. Did you mean build?")
        assert str(error(field, f"{user}:zzzz")) == f"{field.name}: '{user}' has no attribute 'zzzz'."
        assert str(error(field, f"{user}:Ns.nope")) == f"{field.name}: '{user}' has no attribute 'Ns.nope'."


def test_not_callable(user: str) -> None:
    assert str(error(MODEL, f"{user}:NOT_CALLABLE")) == (
        f"model.python: {user}:NOT_CALLABLE is a int, not a function or class to call.")
    assert str(error(GENERATOR, f"{user}:NOT_CALLABLE")) == (  # found when called
        f"param.generator.python: {user}:NOT_CALLABLE(**kwargs) raised TypeError: 'int' object is not callable; "
        "fix the factory or param.generator.kwargs.")


def test_factory_raises(user: str) -> None:
    msg = str(error(MODEL, f"{user}:broken"))
    raised = "RuntimeError: boom second line " + "x" * 300
    assert msg == (f"model.python: {user}:broken(**model.kwargs) raised {raised[:237]}...; "
                   "fix the factory or model.kwargs.")
    msg = str(error(GENERATOR, f"{user}:broken"))
    text = ("boom second line " + "x" * 300)[:200]
    assert msg == (f"param.generator.python: {user}:broken(**kwargs) raised RuntimeError: {text}; "
                   "fix the factory or param.generator.kwargs.")
    assert str(error(MODEL, f"{user}:build", {"bad": 1})) == (
        f"model.python: {user}:build(**model.kwargs) raised TypeError: build() got an unexpected keyword argument "
        "'bad'; fix the factory or model.kwargs.")


def test_factory_must_return_a_module(user: str) -> None:
    assert str(error(MODEL, f"{user}:not_a_module")) == (
        f"model.python: {user}:not_a_module returned int, not a torch.nn.Module; return the network.")
    assert str(error(GENERATOR, f"{user}:not_a_module")) == (
        f"param.generator.python: {user}:not_a_module returned int, not a torch.nn.Module.")
