"""``sftpmirror doctor DEST``: why can't I log in, and what does this server allow?

Each check is reported as ok / warning / problem (with the fix) / skipped, in the order a
connection goes: TCP, SSH version and algorithms, host key, authentication methods, login, SFTP
version, extensions and limits, login directory and chroot, the destination (exists, writable
by a real write-rename-remove probe, free space) and the clock skew seen on the probe file.
A few facts asyncssh does not publish (extension flags, strict KEX) are read from its internals
with safe defaults, so an asyncssh change degrades them to "unknown", never to a crash.
"""

from __future__ import annotations

import asyncio
import posixpath
import secrets
import stat
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from typing import Any

from sftpmirror.engine import release
from sftpmirror.engine.deploy import SUFFIX, release_id
from sftpmirror.engine.history import History
from sftpmirror.engine.tree import NotFound, TreeError, Unsupported, new_tag
from sftpmirror.errors import HostKeyError, SftpMirrorError
from sftpmirror.findings import INFO, OK, PROBLEM, SKIPPED, SYMBOLS, WARNING
from sftpmirror.reporting.text import human
from sftpmirror.transport.advice import findings, software
from sftpmirror.transport.auth import KBDINT, PASSWORD, PUBLICKEY, ConnectOptions
from sftpmirror.transport.connect import allowed_methods, open_session, resolve
from sftpmirror.transport.diagnose import connect_failure
from sftpmirror.transport.login import LoginTrace
from sftpmirror.transport.session import Facts, Session
from sftpmirror.trees.remote import RemoteTree
from sftpmirror.url import RemoteSpec

LOW_SPACE = 100 << 20
CHECKS = (
    "destination", "tcp", "ssh", "algorithms", "host-key", "auth-methods", "login", "sftp",
    "extensions", "limits", "login-directory", "dest-exists", "dest-writable", "server",
    "free-space", "clock-skew", "history", "release",
)  # fmt: skip


@dataclass(slots=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str | None = None


@dataclass(slots=True)
class DoctorReport:
    target: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != PROBLEM for c in self.checks)

    def add(self, name: str, status: str, detail: str, fix: str | None = None) -> None:
        self.checks.append(Check(name, status, detail, fix))

    def skip_rest(self, why: str) -> None:
        done = {c.name for c in self.checks}
        for name in CHECKS:
            if name not in done:
                self.add(name, SKIPPED, why)

    def ordered(self) -> list[Check]:
        """In the order a connection goes (CHECKS), whatever order they were made in."""
        return sorted(self.checks, key=lambda c: CHECKS.index(c.name))

    def as_json(self) -> dict[str, Any]:
        checks = [asdict(c) for c in self.ordered()]
        return {"target": self.target, "ok": self.ok, "checks": checks}


async def doctor(spec: RemoteSpec, options: ConnectOptions) -> DoctorReport:
    report = DoctorReport(str(spec))
    resolved = await resolve(spec, options)
    where = f"{resolved.host}:{resolved.port}"
    alias = f" (ssh_config alias {spec.host!r})" if resolved.host != spec.host else ""
    report.add("destination", INFO, f"{resolved.username}@{where}{alias}, path {spec.path or '.'}")
    if not await _tcp(report, resolved.host, resolved.port, options.timeout):
        report.skip_rest("not reachable")
        return report
    allowed = await allowed_methods(resolved)
    _auth_methods(report, allowed)
    trace = LoginTrace()
    try:
        async with open_session(spec, options, trace) as session:
            _after_login(report, session.facts(), trace)
            await _sftp_checks(report, session, spec.path)
    except HostKeyError as e:
        report.add("host-key", PROBLEM, e.message, e.hint)
        report.skip_rest("no trusted host key")
    except SftpMirrorError as e:
        name = "login" if not trace.succeeded else "sftp"
        report.add(name, PROBLEM, e.message, "\n".join(e.details) or e.hint)
        report.skip_rest(f"{name} failed")
    return report


async def _tcp(report: DoctorReport, host: str, port: int, wait: float) -> bool:
    try:
        async with asyncio.timeout(wait):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                banner = (await reader.readline()).decode("ascii", "replace").strip()
            finally:
                writer.close()
    except (OSError, TimeoutError) as e:
        error = connect_failure(f"{host}:{port}", host, e, wait)
        report.add("tcp", PROBLEM, error.message, "\n".join(error.details) or None)
        return False
    report.add("tcp", OK, f"{host}:{port} reachable")
    if banner.startswith("SSH-2.0-"):
        report.add("ssh", OK, f"server version {banner}")
    else:
        report.add("ssh", PROBLEM, f"not an SSH server: it said {banner[:60]!r}")
    return True


def _auth_methods(report: DoctorReport, allowed: list[str] | None) -> None:
    if allowed is None:
        report.add("auth-methods", WARNING, "the server did not say which methods it allows")
        return
    detail = "server allows: " + (", ".join(allowed) or "(nothing)")
    if PUBLICKEY in allowed and (PASSWORD in allowed or KBDINT in allowed):
        report.add(
            "auth-methods",
            WARNING,
            detail + "; a client with many agent keys can use up MaxAuthTries before the password "
            "(sftpmirror offers no key when given a password)",
            "for a password-only account: 'Match User NAME' with 'AuthenticationMethods password'",
        )
    else:
        report.add("auth-methods", OK, detail)


def _after_login(report: DoctorReport, facts: Facts, trace: LoginTrace) -> None:
    added = next((n for n in trace.notices if n.startswith("Permanently added")), None)
    report.add("host-key", OK, added or f"{facts.host_key} matches known_hosts")
    strict = facts.strict_kex
    detail = f"cipher {facts.cipher}, mac {facts.mac}"
    if strict:
        report.add("algorithms", OK, detail + "; strict KEX on (Terrapin countermeasure)")
    elif strict is None:
        report.add("algorithms", INFO, detail + "; strict KEX: unknown")
    else:
        report.add(
            "algorithms",
            WARNING,
            detail + "; strict KEX off: the connection is exposed to the Terrapin attack",
            "upgrade the server's OpenSSH to 9.6 or later",
        )
    used = trace.attempts[-1] if trace.attempts else None
    how = f"{used.method} ({used.detail})" if used and used.detail else used.method if used else "?"
    report.add("login", OK, f"logged in as {facts.username} with {how}")


async def _sftp_checks(report: DoctorReport, session: Session, path: str) -> None:
    facts = session.facts()
    report.add("sftp", OK, f"SFTP version {facts.sftp_version}")
    stated = session.profile.limits
    handles = (
        f"max open handles {facts.max_handles or 'not limited by the server'}"
        if stated
        else f"no limits stated: at most {session.profile.max_handles} open at once"
    )
    report.add(
        "limits", INFO, f"max read {facts.max_read} B, max write {facts.max_write} B, {handles}"
    )
    await _login_directory(report, session)
    renamed = await _destination(report, session, path)
    present = session.extensions()
    if renamed is not None:
        present["posix_rename"] = renamed  # what the probe saw beats what was advertised
    listed = ", ".join(f"{n.replace('_', '-')}{'' if v else ' (no)'}" for n, v in present.items())
    if present["posix_rename"] is False:
        openssh = software(session.profile) == "OpenSSH"
        report.add(
            "extensions",
            PROBLEM,
            listed + ": without posix-rename a replaced page is missing for a moment",
            "remove '-P posix-rename' (or a -p list without it) from the internal-sftp flags"
            if openssh
            else "the server software lacks posix-rename@openssh.com: ask the host for it",
        )
    else:
        report.add("extensions", OK, listed)
    hardlinks = session.profile.hardlink if session.profile.probed else present.get("hardlink")
    await _history(report, session, path, hardlinks=hardlinks)
    await _release(report, session, path, hardlinks=hardlinks is not False)


async def _release(report: DoctorReport, session: Session, path: str, *, hardlinks: bool) -> None:
    """Can ``--release symlink`` be used here: is the destination our release link (or could
    it be made one), does the server make symbolic links and rename them over one another as
    links (probed in the destination's parent, where the link lives)?"""
    parent, name = posixpath.split(path.rstrip("/"))
    if name in ("", ".", ".."):
        report.add("release", INFO, "--release symlink needs a destination with a name (its "
                   "parent holds the link and the releases): not the login directory")  # fmt: skip
        return
    top = RemoteTree(session, parent, parent or ".")
    now = ""
    with suppress(TreeError, SftpMirrorError):
        kind = await top.file_type(name)
        if kind == "symlink" and (rid := release_id(await top.readlink(name))) is not None:
            records = (await History(top, name + SUFFIX).load()).records
            now = f"{name} links to release {rid}, {len(records)} deploy(s) recorded; "
        elif kind == "dir":
            now = f"{name} is a directory (make it a link once to use it: README, Releases); "
    try:
        await release.check_rename(top, release.Site(name, None), new_tag())
    except SftpMirrorError as e:
        report.add("release", INFO, f"{now}--release symlink cannot be used: {e.message}")
        return
    cost = "unchanged files hard-linked" if hardlinks else "no hard links: each release whole"
    report.add("release", OK, f"{now}--release symlink can be used: links made and renamed as "
               f"links beside {name}; {cost}")  # fmt: skip


async def _history(
    report: DoctorReport, session: Session, path: str, *, hardlinks: bool | None
) -> None:
    """The deploys recorded in the destination, and what their backups hold; whether the
    server can keep backups at all (rollback needs hard links)."""
    tree = RemoteTree(session, path, path or ".")
    try:
        records = (await History(tree, "").load()).records
    except (TreeError, SftpMirrorError):
        records = []
    kept = [r for r in records if r.get("backup")]
    held = sum(int(str(r.get("backup_bytes") or 0)) for r in kept)
    detail = (
        f"{len(records)} deploy(s) recorded, the live one {records[-1].get('live')}; backups of "
        f"{len(kept)} hold {human(held)}"
        if records
        else "no deploy recorded here yet"
    )
    if hardlinks is False:
        report.add(
            "history",
            WARNING,
            detail + "; the server offers no hardlink@openssh.com: backups are made by renames "
            "(a replaced file's name is missing for one round trip), and a rollback moves the "
            "files back out of them (once: a backup rolled back is spent)",
            "OpenSSH's sftp-server offers it (remove '-P hardlink' from the internal-sftp flags)"
            if software(session.profile) == "OpenSSH"
            else None,
        )
    else:
        report.add("history", INFO, detail)


async def _login_directory(report: DoctorReport, session: Session) -> None:
    try:
        home = await session.realpath(".")
    except TreeError as e:
        home = f"(the server cannot say: {e})"
    try:
        names = await session.listdir("/")
        top = sorted(n if isinstance(n, str) else repr(n) for n, *_ in names)
    except TreeError:
        top = []
    system = {"etc", "usr", "bin", "proc", "var"}
    if system & set(top):
        report.add("login-directory", INFO, f"{home}; / looks like a whole system (not chrooted)")
    else:
        shown = ", ".join(top[:8]) + (" …" if len(top) > 8 else "")
        report.add(
            "login-directory", INFO, f"{home}; looks chrooted (/ holds: {shown or 'nothing'})"
        )


async def _destination(report: DoctorReport, session: Session, path: str) -> bool | None:
    """The destination checks; returns whether posix-rename worked on the probe (None: unknown)."""
    where = path or "."
    try:
        attrs = await session.stat(where)
    except TreeError as e:
        report.add(
            "dest-exists",
            WARNING if isinstance(e, NotFound) else PROBLEM,
            f"{where}: {e}",
            "push creates it (with its parents) when the parent is writable",
        )
        report.skip_rest("no destination directory")
        return None
    if not stat.S_ISDIR(attrs.mode):
        report.add("dest-exists", PROBLEM, f"{where} is not a directory")
        report.skip_rest("destination is not a directory")
        return None
    report.add(
        "dest-exists",
        OK,
        f"{where} is a directory (mode {stat.S_IMODE(attrs.mode):03o})",
    )
    profile = await session.probe(where)  # first: it finds posix-rename where unadvertised
    skew, renamed = await _probe(report, session, where)
    if skew is not None:  # the destination is writable: what the server does with attributes
        for found in findings(profile):
            report.add("server", found.status, found.detail, found.fix)
    else:
        report.add("server", SKIPPED, "needs a writable destination")
    await _free_space(report, session, where)
    if skew is None:
        report.add("clock-skew", SKIPPED, "needs the probe file")
    elif abs(skew) > 60:
        report.add(
            "clock-skew",
            WARNING,
            f"the server's clock is {skew:+.0f}s from this machine's",
            "run NTP on both; sftpmirror sets each file's mtime itself, so deploys still work",
        )
    else:
        report.add("clock-skew", OK, f"{round(skew):+d}s (from the probe file's mtime)")
    return renamed


async def _probe(
    report: DoctorReport, session: Session, where: str
) -> tuple[float | None, bool | None]:
    """Write, rename and remove a probe file; return the server's time minus ours, and
    whether posix-rename worked (a server may advertise it and still refuse it: ``-P``)."""
    renamed: bool | None = None
    tag = secrets.token_hex(4)
    tmp = posixpath.join(where, f".sftpmirror-doctor.{tag}.part")
    final = posixpath.join(where, f".sftpmirror-doctor.{tag}")
    try:
        before = time.time()
        f = await session.create(tmp, None)
        try:
            await f.write(b"sftpmirror doctor probe\n", 0)
        finally:
            await f.finish(mode=None, mtime=None)
        after = time.time()
        try:
            await session.posix_rename(tmp, final)
            renamed = True
        except Unsupported:
            renamed = False
            await session.rename(tmp, final)
        mtime = (await session.stat(final)).mtime
    except TreeError as e:
        report.add(
            "dest-writable",
            PROBLEM,
            f"{where} is not writable: {e}",
            "the account must own the directory (chown it to the account); in a chroot the root "
            "is root-owned, so deploy into a directory inside it, such as public_html",
        )
        return None, renamed
    finally:
        for name in (tmp, final):  # random names: only ever our own probe files
            with suppress(TreeError):
                await session.remove(name)
    report.add("dest-writable", OK, f"{where}: a probe file was written, renamed and removed")
    return mtime - (before + after) / 2, renamed


async def _free_space(report: DoctorReport, session: Session, where: str) -> None:
    free = await session.free_space(where)
    if free is None:
        report.add("free-space", SKIPPED, "the server does not report it (no statvfs)")
        return
    detail = f"{free / (1 << 30):.1f} GiB free"
    if free < LOW_SPACE:
        report.add("free-space", WARNING, detail, "free some space, or ask for a larger quota")
    else:
        report.add("free-space", OK, detail)


_LABELS = ("fix here:", "fix on the server:")


def render(report: DoctorReport) -> str:
    lines = [f"sftpmirror doctor {report.target}"]
    for check in report.ordered():
        lines.append(f"  {SYMBOLS[check.status]}  {check.name:<16} {check.detail}")
        fixes = (check.fix or "").splitlines()
        labelled = any(line.startswith(_LABELS) for line in fixes)
        for line in fixes:
            # A fix says so once: "fix here: …" and "fix on the server: …" come labelled, and
            # beside them the evidence of a failed login (what the server allows, what was
            # offered) is shown as it is, not called a fix.
            shown = line if labelled else f"fix: {line}"
            lines.append(f"  {'':7}  {'':16}   {shown}")
    verdict = "no problems found" if report.ok else "problems found"
    lines.append(f"{verdict}")
    return "\n".join(lines)
