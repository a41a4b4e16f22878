"""``rclone serve sftp`` (Debian's ``rclone``, 1.60) over a local directory, as a server of the
compatibility matrix.

rclone needs no system account: it checks ``--user``/``--pass`` itself and writes files as the
uid it runs as (root here). It runs with its default VFS cache mode (``off``), which is what a
host that simply runs ``rclone serve sftp`` gives its users: files opened for writing can only
be written sequentially (a WRITE past the end waits ``--vfs-write-wait``, 1 s, for the gap to
fill, then fails with "Illegal seek"), SETSTAT/FSETSTAT of permissions is accepted but not
applied (files are 0644, directories 0755; times are applied), RENAME replaces an existing
target, ``hardlink@openssh.com`` is advertised and answers OK but links nothing,
``statvfs@openssh.com`` is advertised but unsupported, and SYMLINK/READLINK are unsupported.

Everything rclone would otherwise read or write in root's home is pointed into ``workdir``: an
empty config file, an empty authorized_keys file (so no key in ``~/.ssh`` logs in), the cache
directory and the host key. The directory cache is turned off (``--dir-cache-time 0s``) because
the tests change the served tree behind rclone's back (``CompatServer.reset``); with rclone's
default of 5 minutes a listing after a reset would still show the deleted files.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers.base import (
    COMPAT_PASSWORD,
    COMPAT_USER,
    HOST,
    CompatServer,
    apt_install,
    compat_server,
    served_dir,
    ssh_host_key,
    start_on_free_port,
    stop,
)

__all__ = ["running_rclone"]


@contextmanager
def running_rclone(workdir: Path) -> Iterator[CompatServer]:
    """Start ``rclone serve sftp`` on 127.0.0.1 serving ``workdir/served`` (the login
    directory, holding ``public_html``), with password login for ``COMPAT_USER``."""
    apt_install("rclone", "openssh-client")  # openssh-client: ssh-keygen for the host key
    rclone = shutil.which("rclone")
    if rclone is None:
        raise RuntimeError("rclone is installed but not on PATH")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    key = workdir / "rclone_host_ed25519_key"
    pub = ssh_host_key(key)
    config = workdir / "rclone.conf"
    config.write_text("")
    authorized_keys = workdir / "rclone_authorized_keys"
    authorized_keys.write_text("")
    log = workdir / "rclone.log"
    known_hosts = workdir / "known_hosts"
    login_dir = served_dir(workdir / "served")

    def launch(port: int) -> subprocess.Popen[bytes]:
        log.unlink(missing_ok=True)
        return subprocess.Popen(
            [
                rclone,
                "serve",
                "sftp",
                str(login_dir),
                "--addr",
                f"{HOST}:{port}",
                "--user",
                COMPAT_USER,
                "--pass",
                COMPAT_PASSWORD,
                "--key",
                str(key),
                "--authorized-keys",
                str(authorized_keys),
                "--config",
                str(config),
                "--cache-dir",
                str(workdir / "rclone-cache"),
                "--dir-cache-time",
                "0s",
                "--poll-interval",
                "0",
                "--log-file",
                str(log),
                "-v",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    proc, port = start_on_free_port("rclone serve sftp", launch, [log])
    try:
        yield compat_server(
            kind="rclone",
            port=port,
            public_keys=[pub],
            known_hosts=known_hosts,
            login_dir=login_dir,
            log=log,
            notes=(
                "default VFS cache mode (off): writes must be sequential; a WRITE past the "
                "end fails with 'Illegal seek' once --vfs-write-wait (1 s) passes",
                "chmod (SETSTAT/FSETSTAT permissions) answers OK but is not applied: 0644/0755",
                "hardlink@openssh.com advertised, answers OK, creates nothing",
                "no symlinks (SYMLINK/READLINK unsupported)",
            ),
        )
    finally:
        stop(proc)
