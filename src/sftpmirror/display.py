"""The live progress display on a terminal's stderr (rich): phase, files, bytes, rate, ETA.

One bar counts files (every action of the plan), one counts bytes (the copies); the bars'
description is the current phase. Warnings and failures are printed above the bars, and with
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
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from .model import Action, Plan
from .plan import describe
from .progress import PHASE_TITLES, NullReporter


class LiveReporter(NullReporter):
    def __init__(self, *, verbose: bool = False, file: TextIO | None = None) -> None:
        self.verbose = verbose
        self.console = Console(file=file, stderr=file is None, highlight=False)
        self.progress = Progress(
            TextColumn("[bold]{task.description:<20}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.files: TaskID = self.progress.add_task("connecting", total=None, unit="items")
        self.bytes: TaskID = self.progress.add_task("", total=None, unit="", visible=False)

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
        # Started after the login, so a password prompt has the terminal to itself.
        if name != "connecting" and not self.progress.live.is_started:
            self.progress.start()
        self.progress.update(self.files, description=PHASE_TITLES.get(name, name))

    def planned(self, plan: Plan) -> None:
        total_bytes = plan.bytes_to_copy
        self.progress.update(self.files, total=len(plan.actions()), completed=0)
        self.progress.update(
            self.bytes,
            description="  bytes",
            total=total_bytes,
            completed=0,
            visible=total_bytes > 0,
        )

    def transferred(self, nbytes: int) -> None:
        self.progress.advance(self.bytes, nbytes)

    def warning(self, message: str) -> None:
        self.console.print(f"sftpmirror: warning: {escape(message)}")

    def done(self, action: Action, nbytes: int) -> None:
        self.progress.advance(self.files, 1)
        if not self.verbose:
            return
        if sys.stdout.isatty():  # the same terminal: above the bars
            self.console.print(escape(describe(action)))
        else:  # stdout is a pipe or file: the lines go there, as without a terminal
            print(describe(action), flush=True)

    def failed(self, action: Action, message: str) -> None:
        self.progress.advance(self.files, 1)
        self.console.print(
            f"[red]sftpmirror: {action.op.value} {escape(action.path or '.')}: {escape(message)}"
        )
