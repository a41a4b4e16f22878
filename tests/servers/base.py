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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

COMPAT_USER = "sftpmirror-compat"
COMPAT_PASSWORD = "sftpmirror-Compat-pw-4b1e"  # test-only, local servers on 127.0.0.1
HOST = "127.0.0.1"
START_TIMEOUT = 15.0
#: How many free ports a server is tried on before its start-up counts as failed.
PORT_ATTEMPTS = 5
#: What a server's log says (lower-cased) when another process took its port first.
BIND_ERRORS = ("address already in use", "unable to bind", "cannot bind", "in use")


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


def compat_server(
    *,
    kind: str,
    port: int,
    public_keys: Iterable[str],
    known_hosts: Path,
    login_dir: Path,
    log: Path,
    notes: tuple[str, ...],
) -> CompatServer:
    """A server of the matrix on ``HOST:port`` with password login for :data:`COMPAT_USER`;
    writes ``known_hosts`` with its host keys (``public_keys``, ``type base64 ...`` lines)."""
    known_hosts.write_text("".join(known_hosts_line(port, key) for key in public_keys))
    return CompatServer(
        kind=kind,
        host=HOST,
        port=port,
        user=COMPAT_USER,
        password=COMPAT_PASSWORD,
        known_hosts=known_hosts,
        login_dir=login_dir,
        log=log,
        notes=notes,
    )


def ssh_host_key(key: Path, keytype: str = "ed25519", *options: str) -> str:
    """Make a fresh host key at ``key`` (and ``key.pub``) with ssh-keygen, no passphrase and no
    comment, replacing any old pair; ``options`` go to ssh-keygen. Returns the public key line."""
    public = key.with_name(key.name + ".pub")
    for stale in (key, public):
        stale.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", keytype, *options, "-N", "", "-C", "", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    return public.read_text()


def served_dir(login_dir: Path) -> Path:
    """``login_dir`` made afresh (emptied if it exists) with ``public_html`` in it, both 0755 and
    owned by this process: the login directory of a server that runs as the tests' own user."""
    if login_dir.exists():
        shutil.rmtree(login_dir)
    login_dir.mkdir()
    login_dir.chmod(0o755)
    (login_dir / "public_html").mkdir(mode=0o755)
    (login_dir / "public_html").chmod(0o755)
    return login_dir


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


def log_tail(*logs: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of each log that can be read, each headed by its name."""
    parts: list[str] = []
    for log in logs:
        try:
            text = log.read_text(errors="replace")
        except OSError:
            continue
        parts.append(f"--- {log.name}\n" + ("\n".join(text.splitlines()[-lines:]) or "(empty)"))
    return "\n".join(parts) or "(no log)"


def start_on_free_port(
    what: str,
    launch: Callable[[int], subprocess.Popen[bytes]],
    logs: Sequence[Path],
    stop_proc: Callable[[subprocess.Popen[bytes]], None] = stop,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server on a free 127.0.0.1 port and wait for its SSH banner; returns the process
    and the port. ``launch(port)`` writes any per-port configuration and starts the server (in
    a session of its own). When the server does not come up it is stopped with ``stop_proc``;
    if its ``logs`` say the port was taken meanwhile, another port is tried (at most
    :data:`PORT_ATTEMPTS` in all), else a RuntimeError names ``what`` and quotes the logs."""
    attempt = 0
    while True:
        attempt += 1
        port = free_port()
        proc = launch(port)
        try:
            wait_for_banner(port, partial(_running, proc))
        except RuntimeError as exc:
            stop_proc(proc)
            tail = log_tail(*logs)
            if attempt < PORT_ATTEMPTS and any(err in tail.lower() for err in BIND_ERRORS):
                continue  # the port was taken between free_port() and the server's bind
            raise RuntimeError(f"{what} did not start ({exc}); log:\n{tail}") from exc
        except BaseException:
            stop_proc(proc)
            raise
        return proc, port


def descendants(pid: int) -> list[int]:
    """Child processes (direct and indirect) of ``pid``, parents before children (from /proc)."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in kids.get(todo.pop(0), []):
            found.append(child)
            todo.append(child)
    return found


def _running(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None
