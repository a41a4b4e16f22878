"""The live progress display on a terminal's stderr (rich): phase, files, bytes, rate, ETA.

The bar counts bytes when the plan copies any (else actions); its description is the
current phase. Warnings and failures are printed above the bars, and with
``verbose`` each action too (on stdout when that is not the terminal). Used only when stderr
is a terminal; ``progress.TextReporter`` serves everywhere else.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from sftpmirror.engine.model import Action, Plan
from sftpmirror.engine.plan import describe
from sftpmirror.engine.tree import shown
from sftpmirror.reporting.text import PHASE_TITLES, NullReporter, human

WIDE = 100  # columns from which the bar and the time left are shown


class _BytesOnly(ProgressColumn):
    """A bytes column shown only while the bar counts bytes (not for a delete-only run)."""

    def __init__(self, column: ProgressColumn) -> None:
        super().__init__()
        self.column = column

    def render(self, task: Task) -> Text:
        if not task.fields.get("bytes_mode"):
            return Text("")
        rendered = self.column.render(task)
        return rendered if isinstance(rendered, Text) else Text(str(rendered))


class _Rate(ProgressColumn):
    """The rate in the summary line's units (KiB/s, MiB/s), not rich's decimal MB/s."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{human(speed)}/s", style="progress.data.speed")


class LiveReporter(NullReporter):
    """One line: phase, bar (bytes when there are bytes to copy, else items), items done,
    bytes done, rate, time left, time spent."""

    def __init__(
        self,
        *,
        verbose: bool = False,
        stdout_free: bool = True,
        file: TextIO | None = None,
        console: Console | None = None,
    ) -> None:
        self.verbose = verbose
        self.stdout_free = stdout_free  # False: stdout carries JSON, action lines stay here
        self.console = console or Console(file=file, stderr=file is None, highlight=False)
        # One line that fits the terminal: the bar takes what the figures leave, and on a
        # narrow terminal (80 columns) the time left and the bar give way first.
        wide = self.console.width >= WIDE
        columns: list[ProgressColumn] = [TextColumn("[bold]{task.description:<18}")]
        if wide:
            columns.append(BarColumn(bar_width=None))
        columns += [
            TextColumn("{task.fields[items]}"),
            _BytesOnly(DownloadColumn(binary_units=True)),
            _BytesOnly(_Rate()),
        ]
        if wide:
            columns.append(TimeRemainingColumn())
        columns.append(TimeElapsedColumn())
        self.progress = Progress(
            *columns,
            console=self.console,
            expand=False,
            transient=True,  # the summary line follows: no frozen line with other figures
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.task = self.progress.add_task("connecting", total=None, items="", bytes_mode=False)
        self.items_done = 0
        self.items_total = 0
        self.bytes_mode = False

    def __enter__(self) -> LiveReporter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def phase(self, name: str) -> None:
        self.progress.update(self.task, description=PHASE_TITLES.get(name, name))
        # Started after the login, so a password prompt has the terminal to itself; until
        # then a plain line says what is going on (the screen was blank while connecting).
        if name in ("connecting", "reconnecting") and not self.progress.live.is_started:
            self.console.print(f"sftpmirror: {PHASE_TITLES.get(name, name)}…")
        elif not self.progress.live.is_started:
            self.progress.start()

    def planned(self, plan: Plan) -> None:
        self.items_total = len(plan.actions())
        self.bytes_mode = plan.bytes_to_copy > 0
        total = plan.bytes_to_copy if self.bytes_mode else self.items_total
        self.progress.update(self.task, total=total, completed=0, bytes_mode=self.bytes_mode)
        self._items()

    def _items(self) -> None:
        items = f"{self.items_done}/{self.items_total}"
        self.progress.update(self.task, items=items)
        if not self.bytes_mode:
            self.progress.update(self.task, completed=self.items_done)

    def transferred(self, nbytes: int) -> None:
        self.progress.advance(self.task, nbytes)

    def warning(self, message: str) -> None:
        self.console.print(f"sftpmirror: warning: {escape(message)}")

    def done(self, action: Action, nbytes: int) -> None:
        self.items_done += 1
        self._items()
        if not self.verbose:
            return
        if sys.stdout.isatty() or not self.stdout_free:  # above the bars
            self.console.print(escape(describe(action)))
        else:  # stdout is a pipe or file: the lines go there, as without a terminal
            print(describe(action), flush=True)

    def failed(self, action: Action, message: str) -> None:
        self.items_done += 1
        self._items()
        path = escape(shown(action.path) or ".")
        self.console.print(f"[red]sftpmirror: {action.op.value} {path}: {escape(message)}")
