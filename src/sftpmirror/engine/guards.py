"""Refuse a plan that would delete too much, before anything changes (exit 6).

Real sites have been wiped by a deploy from an empty or half-built directory. So: deleting
from an empty source is refused unless ``allow_empty_source``; more than ``max_delete`` files
is refused; and deleting more than ``max_delete_percent`` of a destination of at least
``MIN_FILES`` files is refused (default 50%; not when emptying was allowed explicitly).
Checked on the plan, so ``--dry-run`` says it too.
"""

from __future__ import annotations

from dataclasses import dataclass

from sftpmirror.engine.model import Kind, Listing, Op, Plan
from sftpmirror.errors import SafetyError

MIN_FILES = 10


@dataclass(frozen=True, slots=True)
class DeleteLimits:
    allow_empty_source: bool = False
    max_delete: int | None = None
    max_delete_percent: float = 50.0


def check_deletes(plan: Plan, src: Listing, dst: Listing, limits: DeleteLimits) -> None:
    doomed = [
        a for a in plan.actions() if a.op in (Op.DELETE, Op.CLEAR) and a.entry.kind is not Kind.DIR
    ]
    if not doomed:
        return
    existing = sum(1 for e in dst.entries.values() if e.kind is not Kind.DIR)
    emptying = all(e.kind is Kind.DIR for e in src.entries.values())  # no file at all
    if emptying and not limits.allow_empty_source:
        raise SafetyError(
            f"refusing to delete all {len(doomed)} file(s) of the destination: the source is "
            "empty (a failed build?)",
            hint="check the source directory; --allow-empty-source to empty the destination",
        )
    if limits.max_delete is not None and len(doomed) > limits.max_delete:
        raise SafetyError(
            f"refusing to delete {len(doomed)} file(s): more than --max-delete {limits.max_delete}",
            hint="run with --dry-run to see them; raise --max-delete to allow it",
        )
    percent = 100.0 * len(doomed) / existing if existing else 0.0
    if existing >= MIN_FILES and percent > limits.max_delete_percent and not emptying:
        raise SafetyError(
            f"refusing to delete {len(doomed)} of the destination's {existing} files "
            f"({percent:.0f}%, more than {limits.max_delete_percent:g}%)",
            hint="run with --dry-run to see them; --max-delete-percent 100 to allow it",
        )
