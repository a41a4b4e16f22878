"""Permission rules in rsync's ``--chmod`` syntax: what modes the mirrored tree gets.

``D755,F644`` (the default) gives a web-readable site whatever the build machine's umask;
``Fgo-w`` takes the source's bits and clears group and other write; ``u+rwX,go+rX`` works as
in chmod(1). Items apply in order, each to directories (``D``), files (``F``) or both.
Only the ``rwx`` bits are set on the other side, so set-id and sticky bits are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sftpmirror.defaults import DEFAULT_CHMOD as DEFAULT_CHMOD
from sftpmirror.engine.model import Kind, Listing
from sftpmirror.errors import UsageError

_WHO = {"u": 0o700, "g": 0o070, "o": 0o007}
_WHAT = {"r": 0o444, "w": 0o222, "x": 0o111}
_OCTAL = re.compile(r"[0-7]{1,4}")
_SYMBOLIC = re.compile(r"([ugoa]*)([-+=])([rwxX]*)")


@dataclass(frozen=True, slots=True)
class _Clause:
    who: int  # mask of the u/g/o bits this clause touches
    op: str  # "+", "-" or "="
    bits: int  # r/w/x bits over all three classes (masked by who when applied)
    big_x: bool  # X: execute only for directories or when someone already has it


@dataclass(frozen=True, slots=True)
class _Item:
    dirs: bool
    files: bool
    octal: int | None
    clauses: tuple[_Clause, ...]

    def apply(self, mode: int, is_dir: bool) -> int:
        if not (self.dirs if is_dir else self.files):
            return mode
        if self.octal is not None:
            return self.octal
        for clause in self.clauses:
            bits = clause.bits
            if clause.big_x and (is_dir or mode & 0o111):
                bits |= 0o111
            bits &= clause.who
            if clause.op == "+":
                mode |= bits
            elif clause.op == "-":
                mode &= ~bits
            else:
                mode = (mode & ~clause.who) | bits
        return mode


@dataclass(frozen=True, slots=True)
class ChmodRules:
    """Parsed ``--chmod`` rules; ``str()`` gives back the text."""

    text: str
    items: tuple[_Item, ...]

    def apply(self, mode: int, *, is_dir: bool) -> int:
        """The permission bits (``rwx``, 0o777) for an entry whose source has ``mode``."""
        mode &= 0o777
        for item in self.items:
            mode = item.apply(mode, is_dir)
        return mode & 0o777

    def __str__(self) -> str:
        return self.text


def parse_chmod(text: str) -> ChmodRules:
    """Parse rsync ``--chmod`` rules; a bad item raises UsageError naming it."""
    items = tuple(_item(part.strip(), text) for part in text.split(","))
    return ChmodRules(text, items)


def _item(part: str, text: str) -> _Item:
    item = part

    def bad(why: str) -> UsageError:
        return UsageError(f"--chmod {text!r}: {item!r} {why}")

    if not part:
        raise bad("is empty (items are separated by single commas)")
    dirs = files = True
    if part[0] in "DF":
        dirs, files = part[0] == "D", part[0] == "F"
        part = part[1:]
        if not part:
            raise bad("needs a mode after D or F")
    if _OCTAL.fullmatch(part):
        octal = int(part, 8)
        if octal & ~0o777:
            raise bad("sets set-id or sticky bits; only rwx bits are set on the other side")
        return _Item(dirs, files, octal, ())
    clause = _SYMBOLIC.fullmatch(part)
    if clause is None:
        if re.fullmatch(r"[ugoa]*[-+=][rwxXst]*", part):
            raise bad("sets set-id or sticky bits; only rwx bits are set on the other side")
        raise bad("is not an octal mode (644) or a chmod clause ([ugoa][-+=][rwxX], e.g. go-w)")
    who_text, op, what = clause.groups()
    who = sum(_WHO[c] for c in set(who_text.replace("a", "ugo"))) if who_text else 0o777
    bits = sum(_WHAT[c] for c in set(what) if c != "X")
    return _Item(dirs, files, None, (_Clause(who, op, bits, "X" in what),))


DEFAULT_RULES = parse_chmod(DEFAULT_CHMOD)


def apply_to(listing: Listing, rules: ChmodRules) -> None:
    """Give every file and directory of a source listing the mode the rules make of it."""
    made: dict[int, int] = {}  # (a site has few modes: each worked out once)
    for path, entry in listing.entries.items():
        if entry.kind is Kind.DIR or entry.kind is Kind.FILE:
            is_dir = entry.kind is Kind.DIR
            key = entry.mode << 1 | is_dir
            if (mode := made.get(key)) is None:
                mode = made[key] = rules.apply(entry.mode, is_dir=is_dir)
            if mode != entry.mode:
                listing.entries[path] = entry.with_mode(mode)  # (once per file at umask 002)
