"""The Green End SFTP server (``gesftpserver``) as the SFTP subsystem of a dedicated OpenSSH sshd.

No chroot: ``COMPAT_USER`` logs in with its password and sshd's ``ForceCommand`` (run with the
account's shell, and applied to the ``sftp`` subsystem request too) changes into this server's
own login directory before it execs gesftpserver. The account's home stays fixed at
:data:`COMPAT_HOME`, so several servers of the matrix can use the one account at the same time,
each with its own login directory under :data:`AREA` (removed on exit).

What sets it apart (Debian's version 2, probed with asyncssh, SFTP v3):

* At most 128 open handles (``MAXHANDLES``). The 129th OPEN still answers OK, with a handle that
  every later request calls invalid; the file descriptor leaks and the server's handle table is
  written past its end, so the server may die later in the session.
* SSH_FXP_SYMLINK takes its arguments in the draft's order (it says so:
  ``symlink-order@rjk.greenend.org.uk`` = ``linkpath-targetpath``), but the banner is OpenSSH's,
  so asyncssh sends them in OpenSSH's reversed order and the link is made at the target's path.
* Requests run on several threads; writes at any offset, in any order, land right.

The helpers :func:`login_area` and :func:`stop_with_sessions` are shared with ``dropbear.py``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.servers.base import (
    COMPAT_USER,
    HOST,
    CompatServer,
    apt_install,
    compat_server,
    descendants,
    ensure_compat_user,
    log_tail,
    ssh_host_key,
    start_on_free_port,
)

__all__ = [
    "AREA",
    "COMPAT_HOME",
    "GESFTPSERVER",
    "log_tail",
    "login_area",
    "running_gesftpserver",
    "stop_with_sessions",
]

#: Root-owned 0755 directory of the test servers' state that must live outside /tmp.
AREA = Path("/var/lib/sftpmirror-tests")
#: The one home of ``COMPAT_USER`` (servers never start in it: each has its own login dir).
COMPAT_HOME = AREA / "compat-home"
GESFTPSERVER = Path("/usr/libexec/gesftpserver")
_SSHD = Path("/usr/sbin/sshd")  # sshd re-execs itself only when started by an absolute path
_PRIVSEP_DIR = Path("/run/sshd")


@contextmanager
def login_area(prefix: str) -> Iterator[tuple[Path, int, int]]:
    """``COMPAT_USER`` set up (home :data:`COMPAT_HOME`), and a fresh login directory for one
    server: ``AREA/<prefix>XXXX``, owned by the account, 0755, holding ``public_html`` (same).
    Yields (login_dir, uid, gid); the directory is removed on exit."""
    if os.geteuid() != 0:
        raise RuntimeError(f"the {prefix.rstrip('-')} fixture needs root (system account)")
    login: Path | None = None
    for _ in range(5):
        AREA.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chown(AREA, 0, 0)
        AREA.chmod(0o755)
        try:
            login = Path(tempfile.mkdtemp(prefix=prefix, dir=AREA))
            break
        except FileNotFoundError:  # AREA removed by another fixture's clean-up meanwhile
            continue
    if login is None:
        raise RuntimeError(f"could not create a directory under {AREA}")
    try:
        uid, gid = ensure_compat_user(COMPAT_HOME)
        for path in (login, login / "public_html"):
            path.mkdir(exist_ok=True)
            os.chown(path, uid, gid)
            path.chmod(0o755)
        yield login, uid, gid
    finally:
        shutil.rmtree(login, ignore_errors=True)


def stop_with_sessions(proc: subprocess.Popen[bytes]) -> None:
    """Stop a listener and the per-connection processes it forked (sshd and dropbear put those
    in sessions of their own, out of reach of ``base.stop``'s process-group kill): deepest
    first, while their parents still live to reap them."""
    if proc.poll() is not None:
        return
    deadline = time.monotonic() + 2  # connections already closed wind down by themselves
    while descendants(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in reversed(descendants(proc.pid)):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 2
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.02)
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _sshd_config(*, port: int, host_key: Path, pid_file: Path, login_dir: Path) -> str:
    forced = f"cd {shlex.quote(str(login_dir))} && exec {GESFTPSERVER}"
    return "\n".join(
        [
            f"ListenAddress {HOST}",
            f"Port {port}",
            f"HostKey {host_key}",
            f"PidFile {pid_file}",
            "LogLevel VERBOSE",
            "UsePAM no",  # sshd checks /etc/shadow itself: no PAM session modules
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication no",
            "AuthorizedKeysFile none",
            "PermitRootLogin no",
            f"AllowUsers {COMPAT_USER}",
            "PrintMotd no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PermitTunnel no",
            # the subsystem must be declared for sshd to accept the request; ForceCommand then
            # replaces it (through the user's shell) with the same server, started in login_dir
            f"Subsystem sftp {GESFTPSERVER}",
            f"ForceCommand {forced}",
            "",
        ]
    )


@contextmanager
def running_gesftpserver(workdir: Path) -> Iterator[CompatServer]:
    """gesftpserver behind an sshd on a free 127.0.0.1 port, password login for ``COMPAT_USER``
    (no chroot). Host key, sshd_config, pid file, log and known_hosts live in ``workdir``."""
    apt_install("openssh-server", "gesftpserver")
    if not GESFTPSERVER.exists():
        raise RuntimeError(f"gesftpserver installed but {GESFTPSERVER} is missing")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    _PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    host_key = workdir / "ssh_host_ed25519_key"
    pub = ssh_host_key(host_key)
    config = workdir / "sshd_config"
    log = workdir / "sshd.log"
    known_hosts = workdir / "known_hosts"
    with login_area("gesftp-") as (login_dir, _uid, _gid):

        def launch(port: int) -> subprocess.Popen[bytes]:
            config.write_text(
                _sshd_config(
                    port=port,
                    host_key=host_key,
                    pid_file=workdir / "sshd.pid",
                    login_dir=login_dir,
                )
            )
            check = subprocess.run(
                [str(_SSHD), "-t", "-f", str(config)], capture_output=True, text=True
            )
            if check.returncode != 0:
                raise RuntimeError(f"sshd rejected {config}:\n{check.stderr}{check.stdout}")
            log.unlink(missing_ok=True)
            return subprocess.Popen(
                [str(_SSHD), "-D", "-f", str(config), "-E", str(log)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )

        proc, port = start_on_free_port(
            "gesftpserver's sshd", launch, [log], stop_proc=stop_with_sessions
        )
        try:
            yield compat_server(
                kind="gesftpserver",
                port=port,
                public_keys=[pub],
                known_hosts=known_hosts,
                login_dir=login_dir,
                log=log,
                notes=(
                    "no chroot: the whole file system is visible, as the account",
                    "at most 128 open handles: the 129th OPEN succeeds with an unusable handle "
                    "(the fd leaks, the server may crash later)",
                    "SYMLINK arguments in the draft's order behind an OpenSSH banner: asyncssh's "
                    "symlink() makes the link at the target's path",
                ),
            )
        finally:
            stop_with_sessions(proc)
