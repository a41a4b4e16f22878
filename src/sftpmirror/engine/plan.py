"""plan(): decide what to do, from two listings and the options. Pure: no I/O, no clock.

The order of the phases is the deploy order: make way for kind changes, directories
shallowest first, assets, then pages (so a new page never points at an asset that is not there
yet), attributes, then — only when ``delete`` is on and nothing failed — deletes and empty
directories deepest first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sftpmirror.defaults import DEFAULT_PROTECT as DEFAULT_PROTECT
from sftpmirror.defaults import PAGE_SUFFIXES
from sftpmirror.engine.model import Action, Entry, Kind, Listing, Op, Phase, Plan
from sftpmirror.engine.tree import FULL, Capabilities, Excludes, shown

ROOT = Entry("", Kind.DIR, mode=0o755)


@dataclass(frozen=True, slots=True)
class PlanOptions:
    delete: bool = False
    perms: bool = True
    modify_window: int = 1
    page_suffixes: tuple[str, ...] = PAGE_SUFFIXES
    # With delete: also what the manifest does not say we deployed (a pull's local side, or
    # --delete-foreign), and never what ``protect`` matches. plan() alone is mechanics: it
    # deletes whatever the source lacks; mirror() passes what the deploy allows
    # (MirrorOptions: only what we deployed, the host's files protected).
    delete_foreign: bool = True
    protect: tuple[str, ...] = ()
    # What setting attributes does on the destination: where chmod is ignored, a file whose
    # mode differs is uploaded again with its mode (or fails, where no mode can be given).
    caps: Capabilities = FULL


def same_file(src: Entry, dst: Entry, window: int, hashes_known: bool = False) -> str | None:
    """Why ``dst`` must be replaced by ``src`` (None when it need not).

    The ladder: size; then content hashes when both are known (the mtime is then ignored: a
    rebuild that only touched it uploads nothing); a destination the manifest vouches for but
    whose file drifted is replaced; without hashes, the mtime within ``window`` seconds.
    """
    if src.size != dst.size:
        return f"size changed ({dst.size} → {src.size} bytes)"
    if src.sha256 and dst.sha256:
        return None if src.sha256 == dst.sha256 else "content changed (same size)"
    if hashes_known and dst.sha256 is None:
        return "changed on the server since the last deploy (or not in the manifest)"
    if abs(src.mtime - dst.mtime) > window:
        return "modification time changed"
    return None


def plan(src: Listing, dst: Listing, options: PlanOptions = PlanOptions()) -> Plan:
    clear: list[Action] = []
    mkdir: list[Action] = []
    copy: list[Action] = []
    attrs: list[Action] = []
    warnings: list[str] = list(src.warnings) + list(dst.warnings)
    conflicts: list[Action] = []
    cleared: set[str] = set()
    kept_links: set[str] = set()  # source links we do not copy: what the destination has stays

    for side, listing in (("source", src), ("destination", dst)):
        for path, why in sorted(listing.unreadable.items()):
            conflicts.append(Action(Op.COPY, Entry(path, Kind.DIR), f"{side}: {why}"))
    for _, refused in sorted(src.refused.items()):
        conflicts.append(Action(Op.COPY, refused.entry, f"source: {refused.why}"))
    refused_deletes: list[Action] = []
    for path, refused in sorted(dst.refused.items()):
        if options.delete and refused.deletable and refused.entry.kind is not Kind.DIR:
            refused_deletes.append(Action(Op.DELETE, refused.entry, refused.why))
        else:
            how = "--delete removes it" if refused.deletable else "remove it by hand"
            warnings.append(f"{shown(path)}: destination {refused.why}; kept ({how})")

    if not dst.root_exists:
        mkdir.append(Action(Op.MKDIR, ROOT, "destination directory does not exist"))

    # A file whose content and permission bits are known to be the same is passed over first,
    # in one test: in a run that changes little, that is nearly every file.
    file, perms = Kind.FILE, options.perms
    any_mode = options.caps.chmod or options.caps.create_mode  # (then every mode is creatable)
    for path in sorted(src.entries):
        s = src.entries[path]
        d = dst.entries.get(path)
        if (
            d is not None
            and s.kind is file
            and d.kind is file
            and s.sha256
            and s.sha256 == d.sha256
            and s.size == d.size
            and (not perms or (any_mode and not (s.mode ^ d.mode) & 0o777))
        ):
            continue
        if s.kind is Kind.SYMLINK:
            warnings.append(f"{path}: symbolic link on the source side, not copied")
            kept_links.add(path)
            continue
        if d is not None and d.kind is not s.kind and (d.kind is Kind.DIR or s.kind is Kind.DIR):
            if d.kind is Kind.DIR:
                held = _subtree(dst, path)
                if not options.delete or _holds_excluded(dst, path):
                    why = "holds excluded paths" if options.delete else "use --delete to replace it"
                    conflicts.append(
                        Action(Op.COPY, s, f"is a directory on the destination; {why}")
                    )
                    continue
                clear.extend(Action(Op.CLEAR, e, "a file replaces this directory") for e in held)
                cleared.update(e.path for e in held)
            else:
                clear.append(Action(Op.CLEAR, d, "a directory replaces this file"))
                cleared.add(path)
            d = None
        if s.kind is Kind.DIR:
            if d is None:
                mkdir.append(Action(Op.MKDIR, s, "new directory"))
            elif options.perms and _perms(s) != _perms(d):
                if options.caps.chmod:
                    attrs.append(Action(Op.ATTRS, s, _mode_change(d, s)))
                else:
                    conflicts.append(Action(Op.ATTRS, s, _mode_change(d, s) + _NO_CHMOD))
        elif options.perms and not options.caps.creatable(s.mode):
            conflicts.append(Action(Op.COPY, s, _uncreatable(s, options.caps)))
        elif d is None:
            copy.append(Action(Op.COPY, s, "new file"))
        elif d.kind is Kind.SYMLINK:
            # The link goes first: a rename over it is followed by some servers (ProFTPD), and
            # would replace the file it points to instead.
            clear.append(Action(Op.CLEAR, d, "a file replaces this symbolic link"))
            copy.append(Action(Op.COPY, s, "a file replaces a symbolic link"))
        elif reason := same_file(
            s, d, options.modify_window, dst.hashes_known and path not in dst.unverified
        ):
            copy.append(Action(Op.REPLACE, s, reason))
        elif options.perms and _perms(s) != _perms(d):
            if options.caps.chmod:
                attrs.append(Action(Op.ATTRS, s, _mode_change(d, s)))
            elif options.caps.creatable(s.mode):
                why = "; the server ignores chmod: uploaded again with its mode"
                copy.append(Action(Op.REPLACE, s, _mode_change(d, s) + why))
            else:
                conflicts.append(Action(Op.ATTRS, s, _mode_change(d, s) + _NO_CHMOD))

    delete: list[Action] = refused_deletes
    rmdir: list[Action] = []
    kept: list[str] = []
    if options.delete:
        protected = Excludes(options.protect) if options.protect else None
        owned = dst.owned if not options.delete_foreign else None
        # Only what the source lacks can go (and only that is sorted).
        in_order = sorted(p for p in dst.entries if p not in src.entries and p not in cleared)
        for path in in_order:
            d = dst.entries[path]
            if _within(path, kept_links):
                continue
            if d.kind is Kind.DIR:
                continue
            if (protected is not None and _protected(protected, path)) or (
                not options.delete_foreign and (owned is None or path not in owned)
            ):
                kept.append(path)
            else:
                delete.append(Action(Op.DELETE, d, "not in source"))
        staying = set(kept)
        for path in in_order:
            d = dst.entries[path]
            if d.kind is not Kind.DIR:
                continue
            if _within(path, kept_links) or _holds_excluded(dst, path) or _holds(staying, path):
                continue
            if protected is not None and _protected(protected, path, is_dir=True):
                continue
            rmdir.append(Action(Op.RMDIR, d, "not in source"))

    pages = [a for a in copy if a.path.lower().endswith(options.page_suffixes)]
    assets = [a for a in copy if not a.path.lower().endswith(options.page_suffixes)]
    warnings += _case_collisions(src)
    sweep = [Action(Op.SWEEP, e, "temporary file of an interrupted run") for e in dst.stale]
    phases = (
        Phase("sweep", _one_step(sorted(sweep, key=lambda a: a.path))),
        Phase("clear", _by_depth(clear, deepest_first=True)),
        Phase("mkdir", _by_depth(mkdir, deepest_first=False)),
        Phase("assets", _one_step(assets)),
        Phase("pages", _one_step(pages)),
        Phase("attrs", _one_step(attrs)),
        Phase("delete", _one_step(delete), destructive=True),
        Phase("rmdir", _by_depth(rmdir, deepest_first=True), destructive=True),
    )
    return Plan(tuple(p for p in phases if p.steps), tuple(warnings), tuple(conflicts), tuple(kept))


def _case_collisions(listing: Listing) -> list[str]:
    """Paths that differ only in case: one server filesystem (case-insensitive) holds one."""
    entries = listing.entries
    # Two paths that are their own fold are two keys, so never alike: only the paths that
    # fold to something else are folded and kept (none, on most sites; a set of every path's
    # fold was 10 MB at 100,000 files, at the run's peak). With their folds all different and
    # none of them a path of the listing, no two paths fold alike.
    folds = [fold for path in entries if (fold := path.casefold()) != path]
    if len(set(folds)) == len(folds) and not any(fold in entries for fold in folds):
        return []
    seen: dict[str, str] = {}
    found = []
    for path in sorted(listing.entries):
        other = seen.setdefault(path.casefold(), path)
        if other != path:
            found.append(
                f"{other} and {path} differ only in case: on a case-insensitive server one "
                "would overwrite the other"
            )
    return found


_NO_CHMOD = " cannot be made: the server ignores chmod"


def _uncreatable(entry: Entry, caps: Capabilities) -> str:
    made = f"{caps.default_mode:03o}" if caps.default_mode is not None else "its own mode"
    return (
        f"mode {_perms(entry):03o} cannot be made: the server ignores chmod and the mode asked "
        f"at creation, and makes new files {made} (--chmod, or --no-perms to accept that)"
    )


def _perms(entry: Entry) -> int:
    return entry.mode & 0o777


def _mode_change(old: Entry, new: Entry) -> str:
    return f"permissions {_perms(old):03o} → {_perms(new):03o}"


def _subtree(listing: Listing, top: str) -> list[Entry]:
    prefix = top + "/"
    return [listing.entries[top]] + [e for p, e in listing.entries.items() if p.startswith(prefix)]


def _within(path: str, tops: set[str]) -> bool:
    """Is ``path`` one of ``tops`` or below one of them?"""
    while path:
        if path in tops:
            return True
        path = path.rpartition("/")[0]
    return False


def _holds(paths: set[str], top: str) -> bool:
    prefix = top + "/"
    return any(p.startswith(prefix) for p in paths)


def _protected(protected: Excludes, path: str, *, is_dir: bool = False) -> bool:
    """Is ``path``, or a directory above it, protected?"""
    if protected(path, is_dir):
        return True
    parent = path.rpartition("/")[0]
    while parent:
        if protected(parent, True):
            return True
        parent = parent.rpartition("/")[0]
    return False


def _holds_excluded(listing: Listing, top: str) -> bool:
    prefix = top + "/"
    return any(p.startswith(prefix) for p in listing.excluded)


def _one_step(actions: list[Action]) -> tuple[tuple[Action, ...], ...]:
    return (tuple(actions),) if actions else ()


def _by_depth(actions: Iterable[Action], *, deepest_first: bool) -> tuple[tuple[Action, ...], ...]:
    levels: defaultdict[int, list[Action]] = defaultdict(list)
    for action in actions:
        levels[action.entry.depth].append(action)
    order = sorted(levels, reverse=deepest_first)
    return tuple(tuple(sorted(levels[d], key=lambda a: a.path)) for d in order)


def describe(action: Action) -> str:
    """One line for dry-run and -v output: ``op path (reason)``."""
    path = shown(action.path) + ("/" if action.entry.kind is Kind.DIR else "")
    return f"{action.op.value:<8} {path if action.path else '.'}  ({action.reason})"


__all__ = ["PAGE_SUFFIXES", "PlanOptions", "describe", "plan", "same_file"]
