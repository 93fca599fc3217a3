"""progress.py: plain progress lines for logs (deciles, heartbeats, units with an ETA, later stages), a bar on a
terminal, nothing when quiet."""
from __future__ import annotations

import io

import pytest
from rich.console import Console

from featviz_cli import progress as pg
from featviz_cli.progress import ProgressDisplay, duration


class _Clock:
    """A stand-in for time.monotonic that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(pg.time, "monotonic", c)
    return c


def _plain() -> Console:
    return Console(file=io.StringIO(), force_terminal=False)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    captured = capsys.readouterr()
    assert captured.out == ""  # progress is a diagnostic: stderr only
    return captured.err.splitlines()


def test_quiet_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with ProgressDisplay(_plain(), quiet=True) as progress:
        assert progress is None
    assert _lines(capsys) == []


def test_plain_lines_at_each_decile_and_the_end(capsys: pytest.CaptureFixture[str], clock: _Clock) -> None:
    with ProgressDisplay(_plain(), quiet=False) as progress:
        for done in range(1, 21):
            progress(done, 20, 0.5 * done)
    assert _lines(capsys) == [f"step {d}/20 objective {0.5 * d:.4g}" for d in range(2, 21, 2)]


def test_a_quiet_stretch_still_gets_a_line_every_ten_seconds(capsys: pytest.CaptureFixture[str], clock: _Clock) -> None:
    with ProgressDisplay(_plain(), quiet=False) as progress:
        progress(1, 1000, 1.0)
        clock.now += 10.5
        progress(2, 1000, 2.0)
        progress(3, 1000, 3.0)
    assert _lines(capsys) == ["step 2/1000 objective 2"]


def test_a_later_stage_names_what_it_counts(capsys: pytest.CaptureFixture[str], clock: _Clock) -> None:
    with ProgressDisplay(_plain(), quiet=False) as progress:
        examples = progress.stage("images", "images/s")
        progress(4, 4, 0.25)  # the stage is not started by being made: still steps
        examples(4, 20, 40.0)
        examples(5, 20, 41.0)  # same decile as 4/20: no line
        examples(20, 20, 50.5)
    assert _lines(capsys) == ["step 4/4 objective 0.25", "images 4/20 images/s 40", "images 20/20 images/s 50.5"]


def test_units_show_the_share_done_and_an_eta(capsys: pytest.CaptureFixture[str], clock: _Clock) -> None:
    with ProgressDisplay(_plain(), quiet=False, units=True) as progress:
        progress.units(2, 10)
        clock.now += 30
        progress.units(4, 10)  # 2 units in 30 s: 6 to go, 90 s
        clock.now += 5
        progress(5, 8, 1.0)  # batch steps: only a heartbeat, 10 s after the last line
        clock.now += 6
        progress(6, 8, 1.5)
        progress(8, 8, 2.0)  # not even at the end of a batch
    assert _lines(capsys) == ["units 2/10 (20%) elapsed 0s", "units 4/10 (40%) elapsed 30s ETA 1m30s",
                              "  batch step 6/8 objective 1.5"]


def test_on_a_terminal_each_stage_gets_its_own_bar(clock: _Clock) -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with ProgressDisplay(console, quiet=False) as progress:
        progress(2, 4, 0.5)
        progress.stage("images", "images/s")(1, 3, 9.0)
        tasks = {t.description: (t.completed, t.total, t.fields["note"]) for t in progress.bar.tasks}
    assert tasks == {"optimizing": (2, 4, "objective 0.5"), "images": (1, 3, "images/s 9")}


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0s"), (12, "12s"), (59.6, "1m00s"), (307, "5m07s"),
                                               (3600, "1h00m"), (11040, "3h04m")])
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text
