"""Rollback: the deploy before the live one put back, by links and renames on the server; no
file content is uploaded (issue 18).

The live deploy L (``History.live()``) kept, in its backup, the manifest from before it and
every file it replaced or deleted. Putting back the deploy P before it is undoing L: files L
added are moved into this rollback's own backup; files L replaced or deleted are linked from
L's backup into place, each through a temporary renamed over the final name, as an upload
lands. ``--to ID`` undoes every deploy after ID, newest first. A rollback is a deploy of its
own in the history (kind "rollback"), with its own backup, so it can be undone too.

Where the server makes no hard links, the files are moved out of L's backup instead (the
live file renamed into the rollback's backup first, as a deploy does there); L's backup is
then spent (its record's ``backup`` false) and removed. A rollback cut short can be run again:
a file whose backup copy is gone while its name is there was put back already.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import time
from dataclasses import dataclass

from sftpmirror.engine.deploy import DeployState
from sftpmirror.engine.history import Backup, History, new_id, record
from sftpmirror.engine.lock import DeployLock
from sftpmirror.engine.manifest import Manifest, ManifestStore
from sftpmirror.engine.model import Action, Entry, Kind, Op, Phase, Plan, Report
from sftpmirror.engine.reporter import Reporter
from sftpmirror.engine.tree import Tree, TreeError, Unsupported, new_tag
from sftpmirror.errors import RemoteError


@dataclass(frozen=True, slots=True)
class Step:
    """Undo one deploy: ``restore`` from its backup, ``remove`` what it added."""

    deploy: str
    restore: tuple[str, ...]
    remove: tuple[str, ...]
    target: Manifest  # the manifest once undone


async def plan_rollback(
    dst: Tree, history: History, current: Manifest, to: str | None
) -> tuple[str, list[Step]]:
    """The deploy to put back, and the steps (newest first)."""
    deploys = [r["id"] for r in history.deploys()]
    live = history.live()
    target = history.pick(live, to)
    position = deploys.index(live)
    steps: list[Step] = []
    state = current
    for deploy in reversed(deploys[deploys.index(target) + 1 : position + 1]):
        entry = next(r for r in history.records if r["id"] == deploy)
        if not entry.get("backup"):
            raise RemoteError(
                f"deploy {deploy} kept no backup (pruned, or spent by an earlier rollback): "
                f"{target} cannot be put back without uploading",
                hint=f"push the source of {target} again instead",
            )
        before = await Backup(dst, history.backup_dir(deploy)).read_before()
        if before is None:
            raise RemoteError(f"the backup of deploy {deploy} has no manifest: cannot undo it")
        restore = tuple(p for p, r in sorted(before.files.items()) if state.files.get(p) != r)
        _, missing = await Backup(dst, history.backup_dir(deploy)).index()
        if lost := sorted(set(restore) & set(missing)):
            raise RemoteError(
                f"deploy {deploy} could not keep {len(lost)} file(s) it replaced ({lost[0]}…: "
                f"another account owns them, so no hard link could be made): {target} cannot "
                "be put back without uploading",
                hint=f"push the source of {target} again instead",
            )
        remove = tuple(p for p in sorted(state.files) if p not in before.files)
        steps.append(Step(deploy, restore, remove, before))
        state = before
    return target, steps


def as_plan(steps: list[Step]) -> Plan:
    """The steps as a Plan, for --dry-run and the summary."""
    actions: list[Action] = []
    for step in steps:
        actions += [
            Action(Op.REPLACE, Entry(p, Kind.FILE), f"from the backup of {step.deploy}")
            for p in step.restore
        ]
        actions += [
            Action(Op.DELETE, Entry(p, Kind.FILE), f"added by {step.deploy}") for p in step.remove
        ]
    return Plan((Phase("rollback", (tuple(actions),)),) if actions else ())


async def rollback(
    dst: Tree,
    state: DeployState,
    store: ManifestStore,
    reporter: Reporter,
    *,
    to: str | None = None,
    dry_run: bool = False,
) -> tuple[str, Plan, Report]:
    """Put back the deploy before the live one (or ``to``); returns its id, the plan, the
    report."""
    held: DeployLock | None = None
    if not dry_run:
        held = state.lock(dst, reporter.warning)
        await held.acquire()
    try:
        return await _rollback(dst, state, store, reporter, to, dry_run)
    finally:
        if held is not None:
            await held.release_quietly()


async def _rollback(
    dst: Tree,
    state: DeployState,
    store: ManifestStore,
    reporter: Reporter,
    to: str | None,
    dry_run: bool,
) -> tuple[str, Plan, Report]:
    reporter.phase("comparing")
    history = await History(dst, state.directory).load()
    current, why = await store.load()
    if current is None:
        raise RemoteError(f"cannot roll back: {why or 'no manifest'}")
    target, steps = await plan_rollback(dst, history, current, to)
    the_plan = as_plan(steps)
    reporter.planned(the_plan)
    report = Report(dry_run=dry_run)
    if dry_run:
        return target, the_plan, report
    started = time.monotonic()
    rollback_id = new_id()
    caps = await dst.capabilities()
    backup = Backup(dst, history.backup_dir(rollback_id), links=caps.links)
    await backup.start(current)
    tag = new_tag()
    reporter.phase("rollback")
    made: set[str] = set()
    spent: list[str] = []
    for step in steps:
        source = Backup(dst, history.backup_dir(step.deploy))
        for path in step.restore:
            action = Action(Op.REPLACE, Entry(path, Kind.FILE), f"from {step.deploy}")
            await _parents(dst, path, made)
            if await _restore(dst, source, backup, path, tag):
                report.done[Op.REPLACE] += 1
            reporter.done(action, 0)
        if not backup.linking and step.restore:
            spent.append(step.deploy)
        for path in step.remove:
            action = Action(Op.DELETE, Entry(path, Kind.FILE), f"added by {step.deploy}")
            if await dst.file_type(path) == "file":
                await backup.move(path)
            report.done[Op.DELETE] += 1
            reporter.done(action, 0)
        await _prune_empty(dst, step.remove, step.target)
    await backup.finish()
    final = steps[-1].target if steps else current
    await store.save(final)
    counts = {op.value: n for op, n in report.done.items() if n}
    rolled_back = [s.deploy for s in steps]
    for entry in history.records:
        if entry.get("id") in spent:
            entry["backup"] = False  # moved back into place: nothing left to undo it with
    await history.append(
        record("rollback", rollback_id, target, counts=counts, backup=True,
               backup_bytes=backup.size, backup_by=backup.method, rolled_back=rolled_back)
    )  # fmt: skip
    for deploy in spent:
        await Backup(dst, history.backup_dir(deploy)).remove()
    if state.keep:
        await history.prune(state.keep)
        await history.save()
    report.elapsed = time.monotonic() - started
    return target, the_plan, report


async def _restore(dst: Tree, source: Backup, backup: Backup, path: str, tag: str) -> bool:
    """Put ``path`` back from ``source`` (an undone deploy's backup), what is there now kept in
    ``backup``: by a hard link, or where the tree makes none, by renames. False when it was put
    back already (a rollback run again after a cut)."""
    kept = source.file(path)
    here, there = await asyncio.gather(dst.file_type(path), dst.file_type(kept))
    if here == "file" and there is None and not backup.linking:
        return False  # moved back out of the backup before the cut (a link would still be there)
    aside = await backup.keep(path) if here == "file" else None
    if backup.linking:
        try:
            await dst.link_into_place(kept, path, tag=tag)
            return True
        except Unsupported:
            backup.linking = False
    await dst.move_into_place(kept, path, aside=aside)
    return True


async def _parents(dst: Tree, path: str, made: set[str]) -> None:
    """Make the directories above ``path`` that a later deploy removed."""
    parent = posixpath.dirname(path)
    missing: list[str] = []
    while parent and parent not in made and await dst.file_type(parent) is None:
        missing.append(parent)
        parent = posixpath.dirname(parent)
    for directory in reversed(missing):
        await dst.mkdir(Entry(directory, Kind.DIR, mode=0o755), perms=True)
        made.add(directory)


async def _prune_empty(dst: Tree, removed: tuple[str, ...], target: Manifest) -> None:
    """Remove the directories the undone deploy made that are empty now (deepest first)."""
    wanted = {posixpath.dirname(p) for p in target.files}
    keep: set[str] = set()
    for directory in wanted:
        while directory:
            keep.add(directory)
            directory = posixpath.dirname(directory)
    candidates: set[str] = set()
    for path in removed:
        parent = posixpath.dirname(path)
        while parent and parent not in keep:
            candidates.add(parent)
            parent = posixpath.dirname(parent)
    for directory in sorted(candidates, key=lambda d: -d.count("/")):
        with contextlib.suppress(TreeError):
            await dst.rmdir(Entry(directory, Kind.DIR))
