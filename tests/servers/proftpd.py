"""ProFTPD's ``mod_sftp`` (Debian ``proftpd-core`` + ``proftpd-mod-crypto``) on 127.0.0.1.

A shared host's SFTP as many hosting panels run it: password login, ``DefaultRoot ~`` (the
client starts in, and is jailed to, the account's home), ``Umask 022``, ``AllowOverwrite on``.
The account is a virtual user of an ``AuthUserFile`` in ``workdir`` (named
:data:`~tests.servers.base.COMPAT_USER`, with that system account's uid/gid, created when
missing), so each server has its own home and several can run at once.

Variants (``kind`` is ``"proftpd"`` for the default, else ``"proftpd-<variant>"``):

* ``"default"``: as above.
* ``"ignore-perms"``: ``SFTPOptions IgnoreSFTPSetPerms`` (permissions in SETSTAT/FSETSTAT are
  ignored and answered OK; those of OPEN and MKDIR are still applied).
* ``"ignore-times"``: ``SFTPOptions IgnoreSFTPSetTimes`` (times are ignored, answered OK).
* ``"no-chmod"``: ``<Limit SITE_CHMOD> DenyAll </Limit>``, the shared-host lock-down: any
  SETSTAT/FSETSTAT carrying permissions, and any OPEN carrying them, is refused.

What each does in detail is in the server's ``notes``.

The home (the login directory) lives in a fresh directory under
``/var/lib/sftpmirror-tests/`` (pytest's ``tmp_path`` is root-only 0700, which the account
cannot traverse), removed on exit; config, host keys, scoreboard, pid file and logs live in
``workdir``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.servers.base import (
    COMPAT_PASSWORD,
    COMPAT_USER,
    HOST,
    CompatServer,
    apt_install,
    compat_server,
    descendants,
    ensure_compat_user,
    ssh_host_key,
    start_on_free_port,
)

__all__ = ["VARIANTS", "running_proftpd"]

PROFTPD = Path("/usr/sbin/proftpd")
MODULE_PATH = Path("/usr/lib/proftpd")
HOMES_BASE = Path("/var/lib/sftpmirror-tests")

#: Each variant's extra configuration lines (in the main server, after the common ones).
VARIANTS: dict[str, tuple[str, ...]] = {
    "default": (),
    "ignore-perms": ("SFTPOptions IgnoreSFTPSetPerms",),
    "ignore-times": ("SFTPOptions IgnoreSFTPSetTimes",),
    "no-chmod": ("<Limit SITE_CHMOD>", "  DenyAll", "</Limit>"),
}

# What every variant does (ProFTPD 1.3.8, Debian 12), probed with asyncssh.
_COMMON_NOTES = (
    "SFTP v3; advertises posix-rename, hardlink, fsync, statvfs, fstatvfs; no limits@openssh.com",
    "RENAME onto an existing file: FILE_ALREADY_EXISTS (posix-rename@openssh.com replaces)",
    "SYMLINK takes OpenSSH's argument order; asyncssh sends it the standard one (swapped link)",
    "OPEN without attrs: 0644 (Umask 022); with permissions: exactly those (0777 stays 0777)",
    "MKDIR with permissions: those minus the umask (0777 gives 0755)",
)
_NOTES: dict[str, tuple[str, ...]] = {
    "default": _COMMON_NOTES,
    "ignore-perms": (
        *_COMMON_NOTES,
        "SETSTAT/FSETSTAT permissions ignored, answered OK; OPEN/MKDIR permissions still applied",
    ),
    "ignore-times": (*_COMMON_NOTES, "SETSTAT/FSETSTAT times ignored, answered OK"),
    "no-chmod": (
        *_COMMON_NOTES,
        "SETSTAT with permissions (even unchanged ones): PERMISSION_DENIED, nothing applied",
        "FSETSTAT with permissions: refused with two STATUS replies in one packet (asyncssh: "
        "PacketDecodeError)",
        "OPEN with permissions: file created (0644) and PERMISSION_DENIED returned",
        "MKDIR with permissions: OK; SETSTAT/FSETSTAT with times only: OK",
    ),
}

# ssh-keygen arguments per host key; RSA and ECDSA in PEM form (mod_sftp reads those via
# OpenSSL), Ed25519 in OpenSSH's own format (the only one it has).
_HOST_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ed25519", ()),
    ("ecdsa", ("-b", "256", "-m", "PEM")),
    ("rsa", ("-b", "3072", "-m", "PEM")),
)


def _account(home: Path) -> tuple[int, int]:
    """uid/gid of the matrix's system account, created (with ``home``) only when missing:
    re-running ``ensure_compat_user`` would move its home under another server's feet."""
    try:
        entry = pwd.getpwnam(COMPAT_USER)
    except KeyError:
        return ensure_compat_user(home)
    return entry.pw_uid, entry.pw_gid


def _password_hash(password: str) -> str:
    done = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _host_keys(workdir: Path) -> dict[Path, str]:
    """Fresh host keys in ``workdir``: private key file → public key line."""
    keys: dict[Path, str] = {}
    for keytype, extra in _HOST_KEYS:
        key = workdir / f"ssh_host_{keytype}_key"
        keys[key] = ssh_host_key(key, keytype, *extra)
        key.chmod(0o600)
    return keys


def _config(*, port: int, workdir: Path, host_keys: Iterable[Path], variant: str) -> str:
    lines = [
        f"ModulePath {MODULE_PATH}",
        "LoadModule mod_sftp.c",
        'ServerName "sftpmirror compat"',
        "ServerType standalone",
        "DefaultServer on",
        "UseIPv6 off",
        f"DefaultAddress {HOST}",
        "SocketBindTight on",
        f"Port {port}",
        "UseReverseDNS off",
        "<IfModule mod_ident.c>",
        "  IdentLookups off",
        "</IfModule>",
        "<IfModule mod_delay.c>",
        "  DelayEngine off",
        "</IfModule>",
        "<IfModule mod_ctrls.c>",
        "  ControlsEngine off",
        "</IfModule>",
        "User nobody",
        "Group nogroup",
        "MaxInstances 30",
        f"ScoreboardFile {workdir / 'proftpd.scoreboard'}",
        f"PidFile {workdir / 'proftpd.pid'}",
        f"SystemLog {workdir / 'proftpd.log'}",
        f"TransferLog {workdir / 'xferlog'}",
        "WtmpLog off",
        "<IfModule mod_auth_pam.c>",
        "  AuthPAM off",
        "</IfModule>",
        "AuthOrder mod_auth_file.c",
        f"AuthUserFile {workdir / 'ftpd.passwd'}",
        f"AuthGroupFile {workdir / 'ftpd.group'}",
        "RequireValidShell off",
        "DefaultRoot ~",
        "Umask 022 022",
        "AllowOverwrite on",
        "TimesGMT on",
        "SFTPEngine on",
        f"SFTPLog {workdir / 'sftp.log'}",
        *(f"SFTPHostKey {key}" for key in host_keys),
        "SFTPAuthMethods password",
        *VARIANTS[variant],
    ]
    return "\n".join(lines) + "\n"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the session processes the daemon forked (they share its process group), then the
    daemon, so each exiting child is reaped by its parent."""
    if proc.poll() is not None:
        return
    deadline = time.monotonic() + 2.0
    while descendants(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # sessions the client closed wind down by themselves
    for pid in reversed(descendants(proc.pid)):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _make_home_base() -> Path:
    for _ in range(5):
        HOMES_BASE.mkdir(mode=0o755, parents=True, exist_ok=True)
        try:
            base = Path(tempfile.mkdtemp(prefix="proftpd-", dir=HOMES_BASE))
        except FileNotFoundError:  # removed by another fixture's clean-up
            continue
        base.chmod(0o755)
        return base
    raise RuntimeError(f"could not create a directory under {HOMES_BASE}")


@contextmanager
def running_proftpd(workdir: Path, variant: str = "default") -> Iterator[CompatServer]:
    """Start ProFTPD's SFTP (``variant``, one of :data:`VARIANTS`) on a free 127.0.0.1 port."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown ProFTPD variant {variant!r} (known: {', '.join(VARIANTS)})")
    apt_install("proftpd-core", "proftpd-mod-crypto", "openssh-client", "openssl")
    if not (MODULE_PATH / "mod_sftp.so").exists():
        raise RuntimeError(f"{MODULE_PATH / 'mod_sftp.so'} missing after installing")
    kind = "proftpd" if variant == "default" else f"proftpd-{variant}"

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    host_keys = _host_keys(workdir)
    known_hosts = workdir / "known_hosts"
    config = workdir / "proftpd.conf"
    log = workdir / "sftp.log"

    base = _make_home_base()
    proc: subprocess.Popen[bytes] | None = None
    try:
        home = base / "home"
        home.mkdir()
        uid, gid = _account(home)
        os.chown(home, uid, gid)
        home.chmod(0o755)
        web_root = home / "public_html"
        web_root.mkdir()
        os.chown(web_root, uid, gid)
        web_root.chmod(0o755)

        passwd = workdir / "ftpd.passwd"
        passwd.write_text(
            f"{COMPAT_USER}:{_password_hash(COMPAT_PASSWORD)}:{uid}:{gid}::{home}:/bin/sh\n"
        )
        group = workdir / "ftpd.group"
        group.write_text(f"{COMPAT_USER}:x:{gid}:\n")
        for secret in (passwd, group):
            secret.chmod(0o600)

        def launch(port: int) -> subprocess.Popen[bytes]:
            config.write_text(
                _config(port=port, workdir=workdir, host_keys=host_keys, variant=variant)
            )
            for stale in workdir.glob("*.log"):
                stale.unlink()
            with (workdir / "proftpd.out").open("wb") as out:  # -n: it logs to stderr
                return subprocess.Popen(
                    [str(PROFTPD), "-n", "-c", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

        logs = [workdir / "proftpd.out", workdir / "proftpd.log", log]
        proc, port = start_on_free_port(f"ProFTPD ({kind})", launch, logs, stop_proc=_stop)

        yield compat_server(
            kind=kind,
            port=port,
            public_keys=host_keys.values(),
            known_hosts=known_hosts,
            login_dir=home,
            log=log,
            notes=_NOTES[variant],
        )
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(base, ignore_errors=True)
        with suppress(OSError):  # only when no other fixture still uses it
            HOMES_BASE.rmdir()
