"""The server profile: what this server really does, probed once per connection, not guessed
from its name or from the extensions it advertises (DESIGN §8).

Servers acknowledge requests they then ignore (ProFTPD's ``IgnoreSFTPSetPerms`` answers a
chmod "OK" and leaves the file 0600), refuse ones a deploy always sends (Net::SFTP::SftpServer
and Twisted Conch refuse SETSTAT; a host's ``<Limit SITE_CHMOD> DenyAll`` does the same), take
writes only in order (``rclone serve sftp``), or support an extension they do not advertise
(paramiko's posix-rename). One probe file in the destination, three round trips sent beside the
scans, tells which; ``Session`` and ``RemoteTree`` adapt to the answer without flags, and doctor
prints it.

The probe, on ``.sftpmirror.<tag>.probe.part`` (a temporary's name: a cut run's leftover is
swept like one):

1. open it new with mode 0600 (a deploy's temporary is private while partial); a second
   probe file opened with no mode (the mode the server gives by itself); a posix-rename of a
   name that does not exist (the error says whether the server knows the request);
2. on the first file, at once: a write at offset 1 before the write at offset 0 (out of order,
   as pipelined writes may arrive), an FSETSTAT of mode 0640 and a past mtime, an FSTAT, and
   the close; an FSTAT and the close of the second;
3. both removed.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import secrets
import stat
from contextlib import suppress
from dataclasses import dataclass, field, replace

import asyncssh
from asyncssh.constants import FILEXFER_ATTR_DEFINED_V4

from sftpmirror.engine.tree import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    PermissionDenied,
    TreeError,
    Unsupported,
)
from sftpmirror.transport.errors import to_tree_error

log = logging.getLogger("sftpmirror.profile")

# The mtime the probe sets: far from now, so a server that ignores it cannot match by chance.
PROBE_MTIME = 1_000_000_000  # 2001-09-09
# Neither the creation's mode (0600) nor a usual default (0644): a server that keeps either
# shows it ignored the chmod.
PROBE_MODE = 0o640
PRIVATE_MODE = 0o600


@dataclass(frozen=True, slots=True)
class Profile:
    """What a server does. ``None``: not known (not probed, or the probe could not tell)."""

    software: str = "?"  # the server's SSH version string, e.g. "SSH-2.0-mod_sftp"
    probed: bool = False
    chmod: bool | None = None  # a mode set after creation takes effect
    chmod_refused: bool = False  # a SETSTAT or FSETSTAT holding a mode is refused
    create_mode: bool | None = None  # a mode given at creation takes effect
    default_mode: int | None = None  # the mode of a file created without one
    mtimes: bool | None = None  # a modification time set takes effect
    posix_rename: bool | None = None  # works (tried, whatever was advertised)
    posix_rename_advertised: bool = False
    hardlink: bool | None = None  # hardlink@openssh.com advertised, and makes links
    sequential_writes: bool = False  # writes out of order fail: one in flight per file
    max_handles: int = 0  # open at once that this run allows itself (the server's, with limits)
    max_read: int = 0
    max_write: int = 0
    limits: bool = False  # the server sent limits@openssh.com
    notes: tuple[str, ...] = field(default=())  # what the probe could not do, and why

    def warnings(self) -> list[str]:
        """The differences a deploy says as warnings, once per connection: those that change
        what the site gets (modes, mtimes, writes in order); the rest go to --debug."""
        return [line for line, warn in self._differences() if warn]

    def adapted(self) -> list[str]:
        """What a deploy does differently on this server, one line each (for --debug and
        doctor); empty on a server that does everything as OpenSSH does."""
        return [line for line, _ in self._differences()]

    def _differences(self) -> list[tuple[str, bool]]:
        """Each difference, and whether a deploy warns of it."""
        said: list[tuple[str, bool]] = []
        if self.chmod_refused:
            line = "the server refuses chmod: files and directories keep the mode they are "
            said.append(
                (line + "created with" + ("" if self.create_mode else " (the server's own)"), True)
            )
        elif self.chmod is False:
            line = "the server acknowledges chmod and ignores it: files are created with their "
            how = "" if self.create_mode else " (where the server honours it)"
            said.append((line + "final mode" + how, True))
        if self.mtimes is False:
            line = "the server ignores the mtimes it is sent: the manifest records the server's own"
            said.append((line, True))
        if self.posix_rename and not self.posix_rename_advertised:
            said.append(("posix-rename works though the server does not advertise it: used", False))
        if self.sequential_writes:
            line = "the server takes writes in order only: one write in flight per file"
            said.append((line, True))
        if not self.limits:
            line = f"the server states no handle limit: at most {self.max_handles} files and "
            said.append((line + "directories open at once", False))
        return said


def refused(answer: object) -> bool:
    """A request the server refuses (rather than fails): PERMISSION_DENIED, OP_UNSUPPORTED,
    or the reply ProFTPD sends to an FSETSTAT under a chmod lock-down (two statuses in one
    packet, which asyncssh cannot decode: its PacketDecodeError is a ValueError)."""
    if isinstance(answer, asyncssh.SFTPError):
        return isinstance(to_tree_error(answer), PermissionDenied | Unsupported)
    return isinstance(answer, ValueError)


def observed_mode(attrs: asyncssh.SFTPAttrs) -> int | None:
    return stat.S_IMODE(attrs.permissions) if attrs.permissions is not None else None


PROBES = ("probe", "probe2", "none", "link")


def probe_names(tag: str) -> list[str]:
    """The names the probe uses in the directory (a scan running beside it skips them)."""
    return [f"{TEMP_PREFIX}{tag}.{n}{TEMP_SUFFIX}" for n in PROBES]


async def probe(
    sftp: asyncssh.SFTPClient, directory: str, base: Profile, tag: str | None = None
) -> Profile:
    """``base`` with what the probe files in ``directory`` showed. Never raises a TreeError:
    what cannot be probed (a read-only directory) stays unknown, and the deploy fails on its
    own files with the server's words."""
    first, second, missing, linked = (
        posixpath.join(directory, name) for name in probe_names(tag or secrets.token_hex(4))
    )
    try:
        return await _probe(sftp, base, first, second, missing, linked)
    except (asyncssh.Error, OSError) as e:
        error = to_tree_error(e)
        if not isinstance(error, TreeError):
            raise error from None
        return replace(base, notes=(f"the probe file could not be written: {error}",))
    finally:
        await asyncio.gather(
            *(sftp.remove(p) for p in (first, second, linked)), return_exceptions=True
        )


async def _probe(
    sftp: asyncssh.SFTPClient, base: Profile, first: str, second: str, missing: str, linked: str
) -> Profile:
    # 1. The two probe files opened; posix-rename asked where it is not advertised.
    opened, plain, renamed = await asyncio.gather(
        _open(sftp, first, PRIVATE_MODE),
        _open(sftp, second, None),
        _try_posix_rename(sftp, missing, missing + ".x"),
        return_exceptions=True,
    )
    profile = replace(base, probed=True)
    if isinstance(renamed, bool):
        profile = replace(profile, posix_rename=renamed)
    if isinstance(opened, asyncssh.SFTPError) and refused(opened):
        # A mode at creation refused (ProFTPD under <Limit SITE_CHMOD> DenyAll makes the file,
        # then answers PERMISSION_DENIED): without one.
        with suppress(asyncssh.SFTPError):
            await sftp.remove(first)
        opened = await _open(sftp, first, None)
        profile = replace(profile, create_mode=False)
    if isinstance(opened, BaseException):
        raise opened
    if isinstance(plain, BaseException):
        raise plain
    # 2. Out of order writes, attributes set and read back, both files closed: at once.
    profile = await _probe_files(opened, plain, profile)
    # 3. Where a mode is refused, an mtime alone may not be (ProFTPD refuses a SETSTAT that
    # holds a mode, whatever else it holds).
    if profile.chmod_refused:
        settable = asyncssh.SFTPAttrs(atime=PROBE_MTIME, mtime=PROBE_MTIME)
        _, after = await asyncio.gather(
            sftp.setstat(first, settable), sftp.stat(first), return_exceptions=True
        )
        took = isinstance(after, asyncssh.SFTPAttrs) and after.mtime == PROBE_MTIME
        profile = replace(profile, mtimes=took)
    # 4. A hard link, where one is advertised (rclone answers OK and makes none).
    if profile.hardlink:
        _, found = await asyncio.gather(
            sftp.link(first, linked), sftp.lstat(linked), return_exceptions=True
        )
        if not isinstance(found, asyncssh.SFTPAttrs):
            note = "hardlink@openssh.com is advertised but makes no link: not used"
            profile = replace(profile, hardlink=False, notes=(*profile.notes, note))
    return profile


async def _open(sftp: asyncssh.SFTPClient, path: str, mode: int | None) -> asyncssh.SFTPClientFile:
    attrs = asyncssh.SFTPAttrs(permissions=mode) if mode is not None else asyncssh.SFTPAttrs()
    return await sftp.open(path, "xb", attrs)


async def send_posix_rename(sftp: asyncssh.SFTPClient, old: str, new: str) -> None:
    """posix-rename@openssh.com, sent whether or not the server advertised it (asyncssh sends
    it only where its flag says so; paramiko supports it unadvertised)."""
    handler = sftp._handler
    advertised = handler._supports_posix_rename
    handler._supports_posix_rename = True
    try:
        await handler.posix_rename(sftp.encode(old), sftp.encode(new))
    finally:
        handler._supports_posix_rename = advertised


async def _try_posix_rename(sftp: asyncssh.SFTPClient, old: str, new: str) -> bool | None:
    """Does the server know posix-rename@openssh.com? Asked where it is not advertised: an
    unknown request is answered OP_UNSUPPORTED, a known one "no such file" (``old`` does not
    exist). Where it is advertised, the first replace tells (one refused falls back to two
    renames: ``RemoteTree._rename``)."""
    if sftp._handler._supports_posix_rename:
        return True
    try:
        await send_posix_rename(sftp, old, new)
    except asyncssh.SFTPOpUnsupported:
        return False
    except asyncssh.SFTPNoSuchFile:
        return True
    except asyncssh.SFTPError:
        return None
    return True


async def _probe_files(
    f: asyncssh.SFTPClientFile, plain: asyncssh.SFTPClientFile, profile: Profile
) -> Profile:
    """On ``f``: its mode as created, a write at offset 1 before the one at 0, an FSETSTAT, an
    FSTAT, the close; on ``plain``: its mode, the close. Each request goes out in its task's
    first step, so they reach the server in this order, in one round trip."""
    handler, handle, other = f._handler, f._handle, plain._handle
    assert handle is not None
    assert other is not None
    settable = asyncssh.SFTPAttrs(permissions=PROBE_MODE, atime=PROBE_MTIME, mtime=PROBE_MTIME)
    created, late, early, setstat, after, closed, default, _ = await asyncio.gather(
        handler.fstat(handle, FILEXFER_ATTR_DEFINED_V4),
        handler.write(handle, 1, b"y"),
        handler.write(handle, 0, b"x"),
        handler.fsetstat(handle, settable),
        handler.fstat(handle, FILEXFER_ATTR_DEFINED_V4),
        handler.close(handle),
        handler.fstat(other, FILEXFER_ATTR_DEFINED_V4),
        handler.close(other),
        return_exceptions=True,
    )
    f._handle = plain._handle = None  # closed above
    for answer in (created, early, after, closed):
        if isinstance(answer, BaseException):
            raise answer
    assert isinstance(created, asyncssh.SFTPAttrs)
    assert isinstance(after, asyncssh.SFTPAttrs)
    if profile.create_mode is None:
        profile = replace(profile, create_mode=observed_mode(created) == PRIVATE_MODE)
    if isinstance(default, asyncssh.SFTPAttrs):
        profile = replace(profile, default_mode=observed_mode(default))
    profile = replace(profile, sequential_writes=isinstance(late, BaseException))
    if isinstance(setstat, BaseException):
        # Refused: PERMISSION_DENIED or OP_UNSUPPORTED, or (ProFTPD's FSETSTAT under a chmod
        # lock-down) two status replies in one packet, which asyncssh cannot decode.
        if not refused(setstat):
            raise setstat
        return replace(profile, chmod=False, chmod_refused=True, mtimes=False)
    return replace(
        profile,
        chmod=observed_mode(after) == PROBE_MODE,
        mtimes=after.mtime is not None and int(after.mtime) == PROBE_MTIME,
    )


SAFE_READ = 16 << 10  # asyncssh's size where no limit is stated: every server answers it whole


async def learn_read(f: asyncssh.SFTPClientFile, tried: int) -> int:
    """How much one read gets from this server: ``tried`` bytes asked at offset 0 of a file
    known to be longer; a shorter answer is the server's own cap (rounded down to a power of
    two, never below SAFE_READ). The answer's bytes are not kept: the copy reads them again."""
    handler, handle = f._handler, f._handle
    assert handle is not None
    try:
        data, _ = await handler.read(handle, 0, tried)
    except asyncssh.SFTPError:
        return SAFE_READ
    got = len(data)
    if got >= tried:
        return tried
    return max(SAFE_READ, 1 << (got.bit_length() - 1)) if got else SAFE_READ
