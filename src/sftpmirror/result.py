"""What a run planned and did, as the library returns it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sftpmirror.engine.model import Plan, Report
from sftpmirror.reporting.summary import summary_line, summary_object


@dataclass(slots=True)
class Result:
    """What a run planned and did: ``summary()`` is the line the CLI prints last, ``as_json()``
    the object of ``--json`` (docs/json.md)."""

    plan: Plan
    report: Report = field(default_factory=Report)

    @property
    def ok(self) -> bool:
        return self.report.ok

    def summary(self) -> str:
        return summary_line(self)

    def as_json(self) -> dict[str, Any]:
        return summary_object(self)
