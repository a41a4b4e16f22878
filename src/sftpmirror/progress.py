"""Output behind an interface: the engine tells a Reporter what happened; the CLI picks one.

``TextReporter`` writes plain lines: actions (with ``verbose``) to stdout, warnings and
failures to stderr. ``NullReporter`` is for the library API and tests.
"""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

from .model import Action
from .plan import describe


class Reporter(Protocol):
    def warning(self, message: str) -> None: ...

    def done(self, action: Action, nbytes: int) -> None: ...

    def failed(self, action: Action, message: str) -> None: ...


class NullReporter:
    def warning(self, message: str) -> None:
        pass

    def done(self, action: Action, nbytes: int) -> None:
        pass

    def failed(self, action: Action, message: str) -> None:
        pass


class TextReporter:
    def __init__(
        self, *, verbose: bool, out: TextIO | None = None, err: TextIO | None = None
    ) -> None:
        self.verbose = verbose
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def warning(self, message: str) -> None:
        print(f"sftpmirror: warning: {message}", file=self.err)

    def done(self, action: Action, nbytes: int) -> None:
        if self.verbose:
            print(describe(action), file=self.out, flush=True)

    def failed(self, action: Action, message: str) -> None:
        print(f"sftpmirror: {action.op.value} {action.path or '.'}: {message}", file=self.err)
