"""What every server of the compatibility matrix shares: the account, ports, start-up checks.

Each server module (``proftpd.py``, ``gesftp.py``, ``dropbear.py``, ``rclone.py``,
``paramiko_server.py``) has one context manager, ``running_<name>(workdir, ...)``, that installs
what it needs (Debian packages or PyPI, never a download of its own), starts the server on
127.0.0.1 with password login, and yields a :class:`CompatServer`. The login directory holds
``public_html`` (the web root the tests deploy to), so ``sftp://user@host:port/public_html``
names it, as on a shared host. Plain helpers: no pytest imports.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

COMPAT_USER = "sftpmirror-compat"
COMPAT_PASSWORD = "sftpmirror-Compat-pw-4b1e"  # test-only, local servers on 127.0.0.1
HOST = "127.0.0.1"
START_TIMEOUT = 15.0


@dataclass(frozen=True)
class CompatServer:
    """A running server of the matrix, as the tests see it."""

    kind: str  # e.g. "proftpd", "proftpd-ignore-perms", "gesftpserver", "rclone"
    host: str
    port: int
    user: str
    password: str
    known_hosts: Path  # a known_hosts file holding the server's host key(s)
    login_dir: Path  # the directory a client starts in, on this machine's disk
    log: Path | None = None  # the server's log, where it writes one
    # What the server is known to make impossible or different (for the matrix's table).
    notes: tuple[str, ...] = field(default=())

    @property
    def web_root(self) -> Path:
        return self.login_dir / "public_html"

    def reset(self) -> None:
        """Empty the web root (recreated, owned like the login directory)."""
        if self.web_root.exists():
            shutil.rmtree(self.web_root)
        self.web_root.mkdir()
        st = self.login_dir.stat()
        os.chown(self.web_root, st.st_uid, st.st_gid)
        self.web_root.chmod(0o755)


def apt_install(*packages: str) -> None:
    """Install Debian packages that are missing (root); ``apt-get update`` only if needed."""
    missing = [p for p in packages if not _installed(p)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"needs root to install {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", RUNLEVEL="1")
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"could not install {missing}:\n{done.stdout}{done.stderr}")


def _installed(package: str) -> bool:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Status}", package], capture_output=True, text=True
    )
    return out.returncode == 0 and out.stdout.endswith("installed")


def ensure_compat_user(home: Path) -> tuple[int, int]:
    """The matrix's system account (shell /bin/sh, so a server may run a command as it),
    with ``home`` as its home directory (made, owned by it, 0755). Returns (uid, gid)."""
    try:
        pwd.getpwnam(COMPAT_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "-M", "-d", str(home), "-s", "/bin/sh", COMPAT_USER],
            check=True,
            capture_output=True,
        )
    subprocess.run(["usermod", "-d", str(home), "-s", "/bin/sh", COMPAT_USER], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run(["chpasswd"], input=f"{COMPAT_USER}:{COMPAT_PASSWORD}\n", text=True,
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run(["chage", "-M", "-1", "-E", "-1", COMPAT_USER], check=True,
                   capture_output=True)  # fmt: skip
    entry = pwd.getpwnam(COMPAT_USER)
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    home.chmod(0o755)
    return entry.pw_uid, entry.pw_gid


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_banner(port: int, alive: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
    """Until the server on ``port`` sends an SSH banner; raise if ``alive()`` turns False or
    ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"server on port {port} exited during start-up")
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.settimeout(2)
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no SSH banner on port {port} within {timeout:g} s")


def known_hosts_line(port: int, public_key_line: str) -> str:
    """A known_hosts line for a key (``type base64``) on 127.0.0.1:port."""
    keytype, blob = public_key_line.split()[:2]
    return f"[{HOST}]:{port} {keytype} {blob}\n"


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a server and its children (it runs in its own process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            return
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)
