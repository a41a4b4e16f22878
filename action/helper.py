"""The Python half of action/deploy.sh (stdlib only, so it runs with any python3 >= 3.11).

``split-args TEXT FILE``: the ``args`` input split as a shell would (quotes kept together),
written to FILE NUL-separated for ``mapfile -d ''``.

``invalid MESSAGE``: a bad input, caught before sftpmirror runs: the annotation, and the outputs
of an exit 2.

``report EXIT_CODE [JSON_FILE]``: reads sftpmirror's ``--json`` summary (docs/json.md; the file
may be empty or missing when sftpmirror stopped before printing it) and writes the action's
outputs to ``$GITHUB_OUTPUT``, a short Markdown table to ``$GITHUB_STEP_SUMMARY`` (each when
set), and GitHub annotations (``::error::``, ``::warning::``) on stdout.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any

#: Every output the action declares, in the order they are written.
OUTPUTS = ("exit-code", "ok", "summary", "bytes", "changed", "planned", "json")
USAGE = 2  # sftpmirror's exit code for bad usage, also used for the action's bad inputs
MAX_LISTED = 20  # failures listed in the step summary; all of them become annotations
MAX_PLANNED = 100  # a dry run's actions listed in the step summary; the log has them all


def _data(text: str) -> str:
    """Escape an annotation's message (as @actions/core does)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    """Escape an annotation property (title=…)."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, title: str, message: str) -> str:
    return f"::{level} title={_prop(title)}::{_data(message)}"


def load_summary(path: Path | None) -> dict[str, Any] | None:
    """The summary object, or None when there is none (sftpmirror stopped before printing)."""
    if path is None or not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and "schema" in obj else None


def _count(value: Any) -> int:
    return sum(v for v in value.values() if isinstance(v, int)) if isinstance(value, dict) else 0


def outputs(code: int, obj: dict[str, Any] | None, problem: str = "") -> dict[str, str]:
    obj = obj or {}
    error = obj.get("error") or {}
    message = error.get("message") or problem
    summary = obj.get("summary") or (f"error: {message}" if message else "")
    return {
        "exit-code": str(code),
        "ok": "true" if code == 0 else "false",
        "summary": summary,
        "bytes": str(obj.get("bytes") or 0),
        "changed": str(_count(obj.get("done"))),
        "planned": str(_count(obj.get("planned"))),
        "json": json.dumps(obj, indent=2) if obj else "",
    }


def write_outputs(path: str, values: dict[str, str]) -> None:
    """``name=value`` lines, or ``name<<DELIMITER`` blocks for values with a newline."""
    with open(path, "a", encoding="utf-8") as out:
        for name, value in values.items():
            if "\n" in value or "\r" in value:
                delimiter = f"ghadelimiter_{uuid.uuid4().hex}"
                out.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
            else:
                out.write(f"{name}={value}\n")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(code: int, obj: dict[str, Any] | None, problem: str) -> str:
    obj = obj or {}
    verdict = "done" if code == 0 else f"failed (exit {code})"
    if obj.get("dry_run"):
        verdict = "dry run" if code == 0 else f"dry run failed (exit {code})"
    lines = [
        f"### sftpmirror {obj.get('command') or 'push'}: {verdict}",
        "",
        "| | |",
        "| --- | --- |",
    ]
    rows = [
        ("target", obj.get("target")),
        ("from", obj.get("source")),
        ("to", obj.get("destination")),
        ("result", obj.get("summary")),
        ("error", (obj.get("error") or {}).get("message")),
    ]
    if not obj:
        rows.append(("error", problem))
    lines += [f"| {name} | {_cell(value)} |" for name, value in rows if value]
    planned = obj.get("actions") or [] if obj.get("dry_run") else []
    if planned:
        lines += ["", f"{len(planned)} action(s) would be done:", ""]
        lines += [
            f"- {a.get('op')} `{a.get('path') or '.'}` ({_cell(a.get('reason', ''))})"
            for a in planned[:MAX_PLANNED]
        ]
        if len(planned) > MAX_PLANNED:
            lines.append(f"- … and {len(planned) - MAX_PLANNED} more (see the log)")
    failures = obj.get("failures") or []
    if failures:
        lines += ["", f"{len(failures)} failed:", ""]
        lines += [
            f"- {f['op']} `{f['path']}`: {_cell(f['message'])}" for f in failures[:MAX_LISTED]
        ]
        if len(failures) > MAX_LISTED:
            lines.append(f"- … and {len(failures) - MAX_LISTED} more (see the log)")
    return "\n".join(lines) + "\n"


def annotation_lines(code: int, obj: dict[str, Any] | None, problem: str) -> list[str]:
    if obj is None:
        return [annotation("error", f"sftpmirror (exit {code})", problem)] if code else []
    found = [annotation("warning", "sftpmirror", str(w)) for w in obj.get("warnings") or []]
    for failure in obj.get("failures") or []:
        title = f"sftpmirror: {failure['op']} failed"
        found.append(annotation("error", title, f"{failure['path']}: {failure['message']}"))
    error = obj.get("error")
    if error:
        message = error["message"] + (f"\nhint: {error['hint']}" if error.get("hint") else "")
        found.append(annotation("error", f"sftpmirror (exit {code})", message))
    return found


def report(code: int, obj: dict[str, Any] | None, problem: str = "") -> None:
    """Annotations on stdout, then the outputs and the step summary. ``problem`` says what went
    wrong when there is no summary object."""
    if obj is None and code and not problem:
        problem = f"sftpmirror exited with {code} before printing its summary: see the log above"
    for line in annotation_lines(code, obj, problem):
        print(line)
    if obj is not None and obj.get("dry_run"):
        for action in obj.get("actions") or []:  # the log shows the whole plan
            print(f"would {action.get('op')} {action.get('path') or '.'} ({action.get('reason')})")
    if path := os.environ.get("GITHUB_OUTPUT"):
        write_outputs(path, outputs(code, obj, problem))
    if path := os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(path, "a", encoding="utf-8") as out:
            out.write(markdown(code, obj, problem))


def split_args(text: str, path: Path) -> None:
    try:
        words = shlex.split(text, comments=True)
    except ValueError as e:
        report(USAGE, None, f"args: {e}")
        sys.exit(USAGE)
    path.write_text("".join(word + "\0" for word in words), encoding="utf-8")


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "split-args":
        split_args(argv[1], Path(argv[2]))
    elif len(argv) == 2 and argv[0] == "invalid":
        report(USAGE, None, argv[1])
    elif len(argv) in (2, 3) and argv[0] == "report":
        report(int(argv[1]), load_summary(Path(argv[2]) if len(argv) == 3 else None))
    else:
        sys.exit(
            "usage: helper.py split-args TEXT FILE | invalid MESSAGE | report CODE [JSON_FILE]"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
