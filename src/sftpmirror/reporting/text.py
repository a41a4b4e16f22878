"""Output behind an interface: the engine tells a Reporter what happens; the CLI picks one.

The engine calls, in order: ``phase("connecting")``, ``phase("scanning")``,
``phase("comparing")``, ``planned(plan)``, then for each of the plan's phases that has work
``phase(name)`` (sweep, clear, mkdir, assets, pages, attrs, delete, rmdir) with ``done`` or
``failed`` per action and ``transferred`` as bytes go out; ``warning`` at any time.

``NullReporter`` does nothing (the library's default, and the base of the others).
``TextReporter`` writes plain lines: what is being done to stderr (a line per phase, so a CI log
shows where time goes), actions with ``verbose`` to stdout, warnings and failures to stderr;
``quiet`` keeps only the failures. ``JsonLinesReporter`` writes one JSON object per event
(schema in docs/json.md). ``Tee`` hands each event to several. The live display for a terminal
is ``reporting.live.LiveReporter``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from sftpmirror.engine.model import Action, Op, Plan
from sftpmirror.engine.plan import describe
from sftpmirror.engine.reporter import NullReporter, Reporter
from sftpmirror.engine.tree import shown

UPLOADING = ("assets", "pages")
#: What each phase is called in progress lines.
PHASE_TITLES = {
    "connecting": "connecting",
    "scanning": "scanning",
    "comparing": "comparing",
    "sweep": "removing leftovers",
    "clear": "clearing the way",
    "mkdir": "making directories",
    "assets": "copying files",  # the same words for push and pull
    "pages": "copying pages",
    "attrs": "setting attributes",
    "delete": "deleting",
    "rmdir": "removing directories",
}

__all__ = ["NullReporter", "Reporter"]  # re-exported: the engine owns the protocol


def phase_counts(plan: Plan) -> dict[str, tuple[int, int]]:
    """Per plan phase: actions, and bytes to copy."""
    return {
        p.name: (
            len(p.actions()),
            sum(a.entry.size for a in p.actions() if a.op in (Op.COPY, Op.REPLACE)),
        )
        for p in plan.phases
    }


class TextReporter(NullReporter):
    def __init__(
        self,
        *,
        verbose: bool = False,
        quiet: bool = False,
        phases: bool = True,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.verbose = verbose and not quiet
        self.quiet = quiet
        self.phases = phases and not quiet
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.counts: dict[str, tuple[int, int]] = {}

    def phase(self, name: str) -> None:
        if not self.phases:
            return
        title = PHASE_TITLES.get(name, name)
        if name in self.counts:
            actions, nbytes = self.counts[name]
            size = f" ({human(nbytes)})" if nbytes else ""
            print(f"sftpmirror: {title}: {actions} item(s){size}", file=self.err, flush=True)
        else:
            print(f"sftpmirror: {title}", file=self.err, flush=True)

    def planned(self, plan: Plan) -> None:
        self.counts = phase_counts(plan)

    def warning(self, message: str) -> None:
        if not self.quiet:
            print(f"sftpmirror: warning: {message}", file=self.err, flush=True)

    def done(self, action: Action, nbytes: int) -> None:
        if self.verbose:
            print(describe(action), file=self.out, flush=True)

    def failed(self, action: Action, message: str) -> None:
        print(
            f"sftpmirror: {action.op.value} {shown(action.path) or '.'}: {message}", file=self.err
        )


class JsonLinesReporter(NullReporter):
    """One JSON object per line for each event (docs/json.md); bytes streamed are not events."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def emit(self, event: str, **fields: Any) -> None:
        print(json.dumps({"event": event, **fields}), file=self.out, flush=True)

    def phase(self, name: str) -> None:
        self.emit("phase", name=name)

    def planned(self, plan: Plan) -> None:
        counts = plan.counts()
        self.emit(
            "plan",
            counts={op.value: counts[op] for op in Op if counts[op]},
            bytes=plan.bytes_to_copy,
        )

    def warning(self, message: str) -> None:
        self.emit("warning", message=message)

    def done(self, action: Action, nbytes: int) -> None:
        self.emit("done", **action_fields(action), bytes=nbytes)

    def failed(self, action: Action, message: str) -> None:
        self.emit("failed", **action_fields(action), message=message)


def action_fields(action: Action) -> dict[str, Any]:
    entry = action.entry
    return {"op": action.op.value, "path": action.path, "kind": entry.kind.value,
            "size": entry.size, "reason": action.reason}  # fmt: skip


class Tee:
    """Every event to every reporter, in order."""

    def __init__(self, *reporters: Reporter) -> None:
        self.reporters = reporters

    def phase(self, name: str) -> None:
        for r in self.reporters:
            r.phase(name)

    def planned(self, plan: Plan) -> None:
        for r in self.reporters:
            r.planned(plan)

    def transferred(self, nbytes: int) -> None:
        for r in self.reporters:
            r.transferred(nbytes)

    def warning(self, message: str) -> None:
        for r in self.reporters:
            r.warning(message)

    def done(self, action: Action, nbytes: int) -> None:
        for r in self.reporters:
            r.done(action, nbytes)

    def failed(self, action: Action, message: str) -> None:
        for r in self.reporters:
            r.failed(action, message)


def human(n: float) -> str:
    """1536 → '1.5 KiB'."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
