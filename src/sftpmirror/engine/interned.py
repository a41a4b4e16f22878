"""One int object per value, where a run holds the same value once per file.

CPython caches the ints up to 256 only: every other int a scan makes is an object of its own
(32 bytes), and a run of 100,000 files holds two listings and a manifest, each with a mode and
an mtime per file. Permission bits take few values (0o644 and 0o755 nearly always), and a
site's mtimes few more (a build writes its files within seconds, and each deploy gives the
remote files the source's): taken from here, each value is one object however many files
share it (about 12 MB fewer at 100,000 files).
"""

from __future__ import annotations

#: Every permission value, 0 to 0o7777, as one object: ``PERMS[mode & 0o7777]`` is
#: ``stat.S_IMODE(mode)``, shared.
PERMS: tuple[int, ...] = tuple(range(0o10000))

#: Distinct mtimes kept at most; past that the table starts again (a tree whose files all
#: have different mtimes gains nothing from it, and must not make it grow without bound).
TIMES_KEPT = 4096

_times: dict[int, int] = {}


def shared_mtime(value: int) -> int:
    """``value``, as the object every earlier caller with an equal mtime got (thread-safe:
    one dict operation each, under the GIL; a race at worst leaves a value unshared)."""
    got = _times.get(value)
    if got is not None:
        return got
    if len(_times) >= TIMES_KEPT:
        _times.clear()
    _times[value] = value
    return value
