"""Typed records passed between the stages: scan → Listing, plan() → Plan, execute() → Report."""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing in a tree, named by its path relative to the tree's root (POSIX, no leading /).

    ``mtime`` is whole seconds (SFTP v3 precision); ``mode`` holds permission bits only;
    ``sha256`` is the content hash when known (hashed locally, or from the manifest).
    """

    path: str
    kind: Kind
    size: int = 0
    mtime: int = 0
    mode: int = 0
    sha256: str | None = None

    @property
    def depth(self) -> int:
        return self.path.count("/") + 1 if self.path else 0

    def with_sha256(self, sha256: str | None) -> Entry:
        """This entry with its content hash: ``dataclasses.replace(entry, sha256=…)`` at a third
        of its cost (a no-change run makes one per file on each side)."""
        return Entry(self.path, self.kind, self.size, self.mtime, self.mode, sha256)

    def with_mode(self, mode: int) -> Entry:
        """This entry with other permission bits (``--chmod``), as cheaply as ``with_sha256``."""
        return Entry(self.path, self.kind, self.size, self.mtime, mode, self.sha256)

    @property
    def parent(self) -> str:
        return posixpath.dirname(self.path)


@dataclass(frozen=True, slots=True)
class Refused:
    """A name a scan found but will not deploy (``tree.name_problem``): ``why`` says so;
    ``deletable`` when the tree can still name it to remove it (not so for bytes that are not
    UTF-8: their path is shown, escaped, and they are kept)."""

    entry: Entry
    why: str
    deletable: bool


@dataclass(slots=True)
class Listing:
    """What a scan found: entries by path, plus the paths it left out because they are excluded.

    ``excluded`` matters on the destination side: a directory holding excluded paths is never
    removed. ``unreadable`` holds what could not be read (path → why): the plan turns each into
    a failure, so a run with a half-read tree deletes nothing. ``root_exists`` is False when the
    tree's root directory is not there (yet). ``hashes_known`` says a manifest vouched for this
    listing: a file without ``sha256`` then is one that changed behind our back. ``refused``
    holds names no tree may deploy (newline, not UTF-8): on the source side each is a failure
    of its own (the rest deploys, exit 1); on the destination side ``--delete`` removes it.
    """

    entries: dict[str, Entry] = field(default_factory=dict)
    excluded: set[str] = field(default_factory=set)
    unreadable: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    root_exists: bool = True
    hashes_known: bool = False
    unverified: set[str] = field(default_factory=set)  # records vouching size and mtime only
    # files the manifest says we deployed (None: no manifest)
    owned: AbstractSet[str] | None = None
    stale: list[Entry] = field(default_factory=list)  # our temporaries left by a crashed run
    refused: dict[str, Refused] = field(default_factory=dict)  # names no tree may deploy
    root_link: str | None = None  # the root is a symbolic link holding this

    def add(self, entry: Entry) -> None:
        self.entries[entry.path] = entry

    def twin(self, path: str) -> bool:
        """Is ``path`` (NFC) taken already, by a name that differs only in Unicode form?
        Then the newcomer is skipped, with a warning."""
        if path in self.entries or path in self.excluded:
            self.warnings.append(f"{path}: names differ only in Unicode form; skipped")
            return True
        return False


class Op(StrEnum):
    SWEEP = "sweep"  # remove an upload temporary an interrupted run left behind
    CLEAR = "clear"  # remove what stands where the source has another kind of thing
    MKDIR = "mkdir"
    COPY = "copy"  # a file the destination lacks
    REPLACE = "replace"  # a file whose content differs
    ATTRS = "attrs"  # same content, permission bits or mtime differ
    DELETE = "delete"
    RMDIR = "rmdir"


@dataclass(frozen=True, slots=True)
class Action:
    """One step of a plan and why: ``entry`` is the source's (for removals, the destination's)."""

    op: Op
    entry: Entry
    reason: str

    @property
    def path(self) -> str:
        return self.entry.path


@dataclass(frozen=True, slots=True)
class Phase:
    """Actions that run in ``steps``: the actions of a step run concurrently, steps in order.

    A ``destructive`` phase runs only when nothing before it failed.
    """

    name: str
    steps: tuple[tuple[Action, ...], ...]
    destructive: bool = False

    def actions(self) -> list[Action]:
        return [action for step in self.steps for action in step]


@dataclass(frozen=True, slots=True)
class Plan:
    """Phases in deploy order; ``conflicts`` are source entries that cannot be applied (each
    becomes a failure of the run, which also holds back the destructive phases)."""

    phases: tuple[Phase, ...]
    warnings: tuple[str, ...] = ()
    conflicts: tuple[Action, ...] = ()
    kept: tuple[str, ...] = ()  # with delete: files kept, not ours or protected (not in source)

    def actions(self) -> list[Action]:
        return [action for phase in self.phases for action in phase.actions()]

    def counts(self) -> Counter[Op]:
        return Counter(action.op for action in self.actions())

    @property
    def bytes_to_copy(self) -> int:
        return sum(a.entry.size for a in self.actions() if a.op in (Op.COPY, Op.REPLACE))

    def __bool__(self) -> bool:
        return any(phase.steps for phase in self.phases) or bool(self.conflicts)


@dataclass(frozen=True, slots=True)
class Failure:
    path: str
    op: Op
    message: str


@dataclass(slots=True)
class Report:
    """What execute() did. ``not_run`` counts destructive actions held back after a failure."""

    done: Counter[Op] = field(default_factory=Counter)
    bytes_copied: int = 0
    # path → size, SHA-256 of the bytes sent, the mtime the file has on the destination
    copied: dict[str, tuple[int, str, int]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    not_run: int = 0
    elapsed: float = 0.0
    dry_run: bool = False
    reconnects: int = 0  # connections lost and made again during the run
    release: str | None = None  # --release symlink: the release made live

    @property
    def ok(self) -> bool:
        return not self.failures

    def carry(self, earlier: Report) -> None:
        """Count in what a pass cut short by a lost connection had done. Its failures are not
        kept: the next pass planned afresh, and tried those files again."""
        self.done.update(earlier.done)
        self.bytes_copied += earlier.bytes_copied
        self.copied = earlier.copied | self.copied
        self.elapsed += earlier.elapsed
