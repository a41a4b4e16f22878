"""Dropbear with OpenSSH's ``sftp-server``, and only an ED25519 host key.

Dropbear runs the ``sftp`` subsystem as ``/usr/lib/sftp-server`` (compiled in; Debian's
``openssh-sftp-server`` provides that path as a symlink to ``/usr/lib/openssh/sftp-server``).
Its forced command (``-c``) replaces the subsystem's command too, so
``-c "cd <login_dir> && exec /usr/lib/sftp-server"`` (run with the account's shell) starts each
session in this server's own login directory; the account's home stays the shared
``COMPAT_HOME`` (see ``gesftp.py``). Dropbear has no ``AllowUsers``: ``-G <the account's group>``
admits only ``COMPAT_USER``, and ``-w`` refuses root anyway.

With only an ED25519 host key Dropbear 2022.83 still advertises ``ssh-ed25519,rsa-sha2-256,
ssh-rsa``. A client that knows no key for the host (asyncssh with ``known_hosts=None``) picks
``rsa-sha2-256``; Dropbear fails an assertion (``rsa.c:164: key != NULL``) and the client sees
"Connection lost". With the known_hosts file written here the client asks for ``ssh-ed25519``
only, which works.

OpenSSH's sftp-server takes SSH_FXP_SYMLINK's arguments reversed (as OpenSSH always has), but the
banner is Dropbear's, so asyncssh sends them in the draft's order: its ``symlink()`` makes the
link at the target's path. Open handles: sftp-server's ``limits@openssh.com`` says
RLIMIT_NOFILE - 5 (inherited from the process that starts Dropbear).
"""

from __future__ import annotations

import grp
import pwd
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers.base import (
    HOST,
    CompatServer,
    apt_install,
    compat_server,
    start_on_free_port,
)
from tests.servers.gesftp import login_area, stop_with_sessions

__all__ = ["DROPBEAR", "SFTP_SERVER", "running_dropbear"]

DROPBEAR = Path("/usr/sbin/dropbear")
SFTP_SERVER = Path("/usr/lib/sftp-server")  # the path compiled into Dropbear


def _public_key(key: Path) -> str:
    out = subprocess.run(
        ["dropbearkey", "-y", "-f", str(key)], check=True, capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        if line.startswith("ssh-ed25519 "):
            return line
    raise RuntimeError(f"no ssh-ed25519 public key in dropbearkey -y output:\n{out}")


@contextmanager
def running_dropbear(workdir: Path) -> Iterator[CompatServer]:
    """Dropbear on a free 127.0.0.1 port, password login for ``COMPAT_USER`` (no chroot), its
    SFTP served by OpenSSH's sftp-server. Host key, log, pid file and known_hosts live in
    ``workdir``."""
    apt_install("dropbear-bin", "openssh-sftp-server")
    for path in (DROPBEAR, SFTP_SERVER):
        if not path.exists():
            raise RuntimeError(f"dropbear-bin and openssh-sftp-server installed but no {path}")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    host_key = workdir / "dropbear_ed25519_host_key"
    host_key.unlink(missing_ok=True)
    subprocess.run(
        ["dropbearkey", "-t", "ed25519", "-f", str(host_key)], check=True, capture_output=True
    )
    log = workdir / "dropbear.log"
    known_hosts = workdir / "known_hosts"
    with login_area("dropbear-") as (login_dir, uid, _gid):
        group = grp.getgrgid(pwd.getpwuid(uid).pw_gid).gr_name
        forced = f"cd {shlex.quote(str(login_dir))} && exec {SFTP_SERVER}"

        def launch(port: int) -> subprocess.Popen[bytes]:
            # -F foreground, -E log to stderr, -w no root, -G only the account's group,
            # -m no motd, -j/-k no port forwarding, -c the forced command
            command = [
                str(DROPBEAR), "-F", "-E", "-w", "-m", "-j", "-k",
                "-G", group,
                "-r", str(host_key),
                "-p", f"{HOST}:{port}",
                "-P", str(workdir / "dropbear.pid"),
                "-c", forced,
            ]  # fmt: skip
            with log.open("wb") as log_fh:
                return subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log_fh,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

        proc, port = start_on_free_port("dropbear", launch, [log], stop_proc=stop_with_sessions)
        try:
            yield compat_server(
                kind="dropbear",
                port=port,
                public_keys=[_public_key(host_key)],
                known_hosts=known_hosts,
                login_dir=login_dir,
                log=log,
                notes=(
                    "no chroot: the whole file system is visible, as the account",
                    "only an ssh-ed25519 host key, yet rsa-sha2-256 and ssh-rsa advertised: a "
                    "client that knows no key for the host picks rsa-sha2-256 and is dropped",
                    "OpenSSH's reversed SYMLINK arguments behind a Dropbear banner: asyncssh's "
                    "symlink() makes the link at the target's path",
                ),
            )
        finally:
            stop_with_sessions(proc)
