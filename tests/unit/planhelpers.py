"""Tiny builders for listings and a compact rendering of plans, shared by the plan tests."""

from __future__ import annotations

from collections.abc import Iterable

from sftpmirror.engine.model import Entry, Kind, Listing, Plan


def f(path: str, size: int = 10, mtime: int = 1_000, mode: int = 0o644) -> Entry:
    return Entry(path, Kind.FILE, size=size, mtime=mtime, mode=mode)


def d(path: str, mode: int = 0o755, mtime: int = 1_000) -> Entry:
    return Entry(path, Kind.DIR, mtime=mtime, mode=mode)


def ln(path: str, mtime: int = 1_000) -> Entry:
    return Entry(path, Kind.SYMLINK, mtime=mtime)


def listing(
    *entries: Entry,
    excluded: Iterable[str] = (),
    root_exists: bool = True,
    warnings: Iterable[str] = (),
) -> Listing:
    result = Listing(excluded=set(excluded), warnings=list(warnings), root_exists=root_exists)
    for entry in entries:
        result.add(entry)
    return result


def render(plan: Plan) -> list[tuple[str, str, str]]:
    """``(phase, op, path)`` for every action, in execution order."""
    return [
        (phase.name, action.op.value, action.path)
        for phase in plan.phases
        for step in phase.steps
        for action in step
    ]


def steps(plan: Plan) -> list[tuple[str, tuple[str, ...]]]:
    """``(phase, paths of one step)`` for every step, in execution order."""
    return [
        (phase.name, tuple(action.path for action in step))
        for phase in plan.phases
        for step in phase.steps
    ]
