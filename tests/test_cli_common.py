"""The CLI's shared pieces: the error boundary every command goes through."""
from __future__ import annotations

import pytest
import typer

from featviz_cli import cli_common
from featviz_cli.errors import LayerError, OptimizationError, SpecError


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli_common.state, "debug", False)


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (SpecError("steps", "must be >= 1, got 0."), 2, "Error: steps: must be >= 1, got 0."),
        (LayerError("objective.layer: no layer 'x'."), 2, "Error: objective.layer: no layer 'x'."),
        (OptimizationError("the objective became nan at step 3"), 1, "Error: the objective became nan at step 3"),
        (KeyboardInterrupt(), 130, "Interrupted; files already written are complete."),
        (ValueError("odd"), 1, "Error: unexpected ValueError: odd (rerun with --debug for the traceback)"),
    ],
    ids=["spec", "layer", "optimization", "interrupt", "unexpected"],
)
def test_the_error_boundary_maps_errors_to_one_line_and_an_exit_code(
        error: BaseException, code: int, line: str, capsys: pytest.CaptureFixture[str]) -> None:
    @cli_common.command
    def fails() -> None:
        """A command that fails."""
        raise error

    with pytest.raises(typer.Exit) as e:
        fails()
    assert e.value.exit_code == code
    captured = capsys.readouterr()
    assert captured.err == line + "\n" and captured.out == ""
    assert fails.__doc__ == "A command that fails." and fails.__name__ == "fails"


def test_the_error_boundary_reraises_with_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli_common.state, "debug", True)

    @cli_common.command
    def fails() -> None:
        raise SpecError("steps", "bad")

    with pytest.raises(SpecError):
        fails()
