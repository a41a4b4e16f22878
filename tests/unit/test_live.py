"""The live line on a terminal (issue 17): it says something while connecting, fits an
80-column terminal, and leaves no frozen line whose figures disagree with the summary."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from sftpmirror.engine.model import Action, Entry, Kind, Op, Phase, Plan
from sftpmirror.reporting.live import LiveReporter

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _run(width: int) -> tuple[list[str], int]:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system=None)
    entries = [Entry(f"posts/{i:04}/index.html", Kind.FILE, 40_000, 0, 0o644) for i in range(1281)]
    actions = tuple(Action(Op.COPY, e, "new file") for e in entries)
    plan = Plan((Phase("assets", (actions,)),))
    with LiveReporter(console=console) as live:
        live.phase("connecting")
        live.phase("scanning")
        live.planned(plan)
        live.phase("assets")
        for action in actions[:700]:
            live.transferred(action.entry.size)
            live.done(action, action.entry.size)
        live.progress.refresh()
        rows = console.render_lines(live.progress.get_renderable(), console.options, pad=False)
    text = ANSI.sub("", out.getvalue())
    return [line for chunk in text.split("\n") for line in chunk.split("\r")], len(rows)


@pytest.mark.parametrize("width", [80, 120])
def test_the_live_line_fits_the_terminal(width: int) -> None:
    """One line, never wrapped onto a second (it wrapped at 80 columns)."""
    lines, rows = _run(width)
    assert rows == 1
    assert max(len(line) for line in lines) <= width, max(lines, key=len)
    assert any("700/1281" in line for line in lines)


def test_something_is_said_while_connecting() -> None:
    assert "sftpmirror: connecting…" in _run(80)[0]


def test_no_frozen_line_is_left_when_it_ends() -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True, color_system=None)
    with LiveReporter(console=console) as live:
        live.phase("scanning")
        live.progress.refresh()
    tail = ANSI.sub("", out.getvalue()).rstrip("\n").split("\n")[-1]
    assert "scanning" not in tail  # transient: the bar is gone, the summary comes next
