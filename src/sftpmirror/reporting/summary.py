"""The end of a run, said two ways: one human line, and one JSON object (docs/json.md).

Both come from the same facts, so ``--json`` and the line never disagree. The library's
``Result`` has them too (``Result.summary()``, ``Result.as_json()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sftpmirror.engine.model import Op
from sftpmirror.errors import ExitStatus, SftpMirrorError
from sftpmirror.reporting.text import action_fields, human

if TYPE_CHECKING:
    from sftpmirror.result import Result

SCHEMA = "sftpmirror.summary/1"


@dataclass(frozen=True, slots=True)
class Run:
    """What the CLI ran, for the JSON summary."""

    command: str
    source: str | None = None  # None: the run stopped before its arguments were resolved
    destination: str | None = None
    target: str | None = None


def summary_line(result: Result, elapsed: float | None = None) -> str:
    report = result.report
    if report.dry_run:
        counts = result.plan.counts()
        parts = [f"{counts[op]} {op.value}" for op in Op if counts[op]]
        size = f" ({human(result.plan.bytes_to_copy)})" if result.plan.bytes_to_copy else ""
        return f"dry run: would do {', '.join(parts) or 'nothing'}{size}; nothing was changed"
    seconds = report.elapsed if elapsed is None else elapsed
    parts = [f"{report.done[op]} {op.value}" for op in Op if report.done[op]]
    line = f"done: {', '.join(parts) or 'nothing to do'}; {human(report.bytes_copied)} in "
    line += f"{seconds:.1f}s"
    if report.bytes_copied and seconds > 0:
        line += f" ({human(report.bytes_copied / seconds)}/s)"
    if report.failures:
        line += f"; {len(report.failures)} FAILED"
    if report.not_run:
        line += f"; {report.not_run} deletion(s) not run because of the failures"
    if report.reconnects:
        line += f"; reconnected {report.reconnects} time(s)"
    if result.plan.kept:
        line += f"; kept {len(result.plan.kept)} not ours or protected"
    if report.release:
        line += f"; live: {report.release}"
    return line


def exit_status(result: Result) -> int:
    return int(ExitStatus.FAILED_ITEMS) if result.report.failures else int(ExitStatus.OK)


def summary_object(
    result: Result | None,
    *,
    run: Run | None = None,
    elapsed: float | None = None,
    warnings: list[str] | None = None,
    error: SftpMirrorError | None = None,
    exit_code: int | None = None,
) -> dict[str, Any]:
    """The ``--json`` object. Every key is always present (null or empty when not known)."""
    if exit_code is None:
        exit_code = int(error.exit_status) if error else exit_status(result) if result else 0
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "ok": exit_code == 0,
        "exit_code": exit_code,
        "command": run.command if run else None,
        "target": run.target if run else None,
        "source": run.source if run else None,
        "destination": run.destination if run else None,
        "dry_run": bool(result and result.report.dry_run),
        "done": {},
        "planned": {},
        "bytes": 0,
        "planned_bytes": 0,
        "seconds": None,
        "failures": [],
        "not_run": 0,
        "reconnects": 0,
        "release": None,
        "warnings": list(warnings or ()),
        "actions": [],
        "conflicts": [],
        "kept": [],
        "error": None,
        "summary": None,
    }
    if result is not None:
        report, plan = result.report, result.plan
        planned = plan.counts()
        seconds = report.elapsed if elapsed is None else elapsed
        out |= {
            "done": {op.value: report.done[op] for op in Op if report.done[op]},
            "planned": {op.value: planned[op] for op in Op if planned[op]},
            "bytes": report.bytes_copied,
            "planned_bytes": plan.bytes_to_copy,
            "seconds": round(seconds, 3),
            "failures": [
                {"op": f.op.value, "path": f.path, "message": f.message} for f in report.failures
            ],
            "not_run": report.not_run,
            "reconnects": report.reconnects,
            "release": report.release,
            "conflicts": [action_fields(a) for a in plan.conflicts],
            "kept": list(plan.kept),
            "summary": summary_line(result, elapsed),
        }
        if report.dry_run:
            out["actions"] = [action_fields(a) for a in plan.actions()]
    if error is not None:
        out["error"] = {
            "message": error.message,
            "details": list(error.details),
            "hint": error.hint,
            "kind": type(error).__name__,
        }
    return out
