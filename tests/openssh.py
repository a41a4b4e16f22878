"""Run a real OpenSSH ``sshd`` on 127.0.0.1 with a chrooted, SFTP-only account.

This is a plain helper module (no pytest imports) so it can be used from
fixtures, from ad-hoc scripts and from other test modules alike::

    with running_sshd(tmp_path) as info:
        ...  # connect to info.host:info.port as info.user / info.password

Requirements: it must run as root (sshd's ChrootDirectory and privilege
separation need it) on a Debian-like system; ``ensure_sshd()`` installs
``openssh-server`` with apt-get when it is missing.

Notes on what sshd insists on:

* Every path component of ``ChrootDirectory`` must be owned by root and must
  not be group- or world-writable (OpenSSH's ``safely_chroot``).  ``/tmp`` is
  1777, so chroots can *not* live under pytest's ``tmp_path``; they are
  created under :data:`CHROOT_BASE` (``/var/lib/sftpmirror-tests``) instead.
* The chroot root itself is root-owned 0755 and therefore not writable by the
  SFTP user; ``public_html`` inside it belongs to the user (as on a typical
  shared web host).
* The privilege separation directory ``/run/sshd`` must exist.
* sshd refuses to re-exec itself unless started with an absolute path.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path

__all__ = [
    "CHROOT_BASE",
    "DEFAULT_PASSWORD",
    "DEFAULT_USER",
    "SshdInfo",
    "ensure_sshd",
    "ensure_user",
    "running_sshd",
    "scratch_dir",
]

DEFAULT_USER = "sftpmirror-test"
DEFAULT_PASSWORD = "sftpmirror-Test-pw-7f3a"  # test-only, local sshd on 127.0.0.1

#: Root-owned 0755 directory holding one sub-directory per running sshd.
CHROOT_BASE = Path("/var/lib/sftpmirror-tests")

_HOST = "127.0.0.1"
_PRIVSEP_DIR = Path("/run/sshd")
_START_TIMEOUT = 10.0
_PORT_ATTEMPTS = 5
_BIND_ERRORS = ("Address already in use", "Cannot bind any address")


@dataclass(frozen=True)
class SshdInfo:
    """Everything a test needs to talk to a running fixture sshd."""

    host: str
    port: int
    user: str
    password: str
    chroot: Path
    web_root: Path
    known_hosts: Path
    log: Path
    config: Path
    host_key_fingerprints: list[str]

    def url(self, path: str = "public_html") -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}/{path}"


# --------------------------------------------------------------------------
# system preparation
# --------------------------------------------------------------------------


def _is_root() -> bool:
    return os.geteuid() == 0


def _find_sshd() -> Path | None:
    for candidate in ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"):
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    found = shutil.which("sshd")
    return Path(found).resolve() if found else None


def ensure_sshd() -> Path:
    """Return the absolute path of the sshd binary, installing it if needed.

    Installation (``apt-get install -y openssh-server``) is only attempted when
    running as root; ``apt-get update`` is run only if the first install fails.
    """
    sshd = _find_sshd()
    if sshd is not None:
        return sshd
    if not _is_root():
        raise RuntimeError(
            "OpenSSH sshd not found and not running as root; "
            "install it with `apt-get install openssh-server`"
        )
    if shutil.which("apt-get") is None:
        raise RuntimeError("OpenSSH sshd not found and apt-get is not available")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", "openssh-server"]
    first = subprocess.run(install, env=env, capture_output=True, text=True)
    if first.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True)
        second = subprocess.run(install, env=env, capture_output=True, text=True)
        if second.returncode != 0:
            raise RuntimeError(
                "could not install openssh-server:\n" + second.stdout + second.stderr
            )
    sshd = _find_sshd()
    if sshd is None:
        raise RuntimeError("openssh-server was installed but no sshd binary was found")
    return sshd


def _require_root(what: str) -> None:
    if not _is_root():
        raise RuntimeError(f"{what} requires root (current euid {os.geteuid()})")


def ensure_user(name: str, password: str) -> None:
    """Create system user *name* if missing and set its password. Idempotent.

    The account has no home directory on disk, shell ``/usr/sbin/nologin`` and
    home ``/`` - which, inside the chroot, is the chroot root, so a client's
    initial directory is the chroot root and ``public_html`` is a relative path
    from there.
    """
    _require_root("ensure_user")
    nologin = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") else "/bin/false"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "-M",
                "-d",
                "/",
                "-s",
                nologin,
                "-c",
                "sftpmirror test account",
                name,
            ],
            check=True,
            capture_output=True,
        )
    else:
        if entry.pw_dir != "/" or entry.pw_shell != nologin:
            subprocess.run(
                ["usermod", "-d", "/", "-s", nologin, name],
                check=True,
                capture_output=True,
            )
    subprocess.run(
        ["chpasswd"],
        input=f"{name}:{password}\n",
        text=True,
        check=True,
        capture_output=True,
    )
    # Never let the (test) password expire or the account be locked.
    subprocess.run(["chage", "-M", "-1", "-E", "-1", name], check=True, capture_output=True)


def _check_chroot_path(path: Path) -> None:
    """Fail early, with a clear message, where sshd's safely_chroot would."""
    for component in [path, *path.parents]:
        st = component.stat()
        if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise RuntimeError(
                f"bad ownership or modes for chroot path component {component} "
                f"(uid {st.st_uid}, mode {stat.filemode(st.st_mode)}): every "
                "component must be root-owned and not group/world writable"
            )


def _make_base_dir() -> Path:
    """Create a unique root-owned 0755 directory under CHROOT_BASE."""
    for _ in range(5):
        CHROOT_BASE.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chown(CHROOT_BASE, 0, 0)
        CHROOT_BASE.chmod(0o755)
        try:
            base = Path(tempfile.mkdtemp(prefix="sshd-", dir=CHROOT_BASE))
        except FileNotFoundError:  # CHROOT_BASE removed by a concurrent cleanup
            continue
        base.chmod(0o755)
        return base
    raise RuntimeError(f"could not create a directory under {CHROOT_BASE}")


def _remove_base_dir(base: Path) -> None:
    shutil.rmtree(base, ignore_errors=True)
    with suppress(OSError):  # only succeeds when no other fixture is using it
        CHROOT_BASE.rmdir()


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A fresh root-owned 0755 directory under CHROOT_BASE (a valid home for chroots), removed
    on exit."""
    _require_root("scratch_dir")
    base = _make_base_dir()
    try:
        yield base
    finally:
        _remove_base_dir(base)


# --------------------------------------------------------------------------
# keys, config, process handling
# --------------------------------------------------------------------------


def _generate_host_keys(workdir: Path) -> list[Path]:
    keys: list[Path] = []
    for keytype, extra in (("ed25519", []), ("rsa", ["-b", "3072"])):
        key = workdir / f"ssh_host_{keytype}_key"
        for stale in (key, key.with_name(key.name + ".pub")):
            stale.unlink(missing_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", keytype, *extra, "-N", "", "-C", "", "-f", str(key)],
            check=True,
            capture_output=True,
        )
        keys.append(key)
    return keys


def _fingerprint(pubkey: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(pubkey)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    fingerprint = out.split()[1]
    if not fingerprint.startswith("SHA256:"):
        raise RuntimeError(f"unexpected ssh-keygen -l output: {out!r}")
    return fingerprint


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _render_config(
    *,
    port: int,
    host_keys: Sequence[Path],
    pid_file: Path,
    authorized_keys: Path,
    user: str,
    chroot: Path,
    max_auth_tries: int,
    auth_methods: str | None,
    password_authentication: bool,
    kbd_interactive: bool,
    pubkey: bool,
    sftp_flags: str,
    extra_global: str,
    extra_match: str,
    match_block: str | None,
) -> str:
    lines = [
        f"ListenAddress {_HOST}",
        f"Port {port}",
        *(f"HostKey {key}" for key in host_keys),
        f"PidFile {pid_file}",
        "LogLevel VERBOSE",
        "UsePAM yes",
        f"PasswordAuthentication {_yes_no(password_authentication)}",
        f"KbdInteractiveAuthentication {_yes_no(kbd_interactive)}",
        f"PubkeyAuthentication {_yes_no(pubkey)}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PermitRootLogin no",
        f"MaxAuthTries {max_auth_tries}",
        "PrintMotd no",
        "Subsystem sftp internal-sftp",
        *extra_global.strip().splitlines(),
        "",
    ]
    if match_block is not None:
        return "\n".join(lines) + "\n" + match_block
    lines += [
        f"Match User {user}",
        f"    ChrootDirectory {chroot}",
        f"    ForceCommand internal-sftp {sftp_flags}".rstrip(),
        "    AllowTcpForwarding no",
        "    AllowAgentForwarding no",
        "    X11Forwarding no",
        "    PermitTunnel no",
    ]
    if auth_methods:
        lines.append(f"    AuthenticationMethods {auth_methods}")
    lines.extend(f"    {line.strip()}" for line in extra_match.strip().splitlines())
    return "\n".join(lines) + "\n"


def _log_tail(log: Path, lines: int = 30) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no sshd log)"
    return "\n".join(text.splitlines()[-lines:]) or "(sshd log is empty)"


def _children(pid: int) -> list[int]:
    """Direct and indirect child processes of *pid* (via /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat_line = fh.read()
        except OSError:
            continue
        # the command name may contain spaces/parentheses: split after the last ')'
        ppid = int(stat_line.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    result: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            result.append(child)
            todo.append(child)
    return result


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _reaped(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the listener and any per-connection sshd processes it forked.

    Per-connection sshd processes call setsid(), so they are not in the
    listener's process group.  They are stopped deepest-first while their
    parents are still alive to reap them: orphans would be re-parented to
    PID 1, which in containers often never reaps them (zombies pile up).
    """
    if proc.poll() is None:
        # connections the caller already closed normally wind down by themselves
        _wait_until(lambda: not _children(proc.pid), 2.0)
        for pid in reversed(_children(proc.pid)):  # breadth-first list: deepest last
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            _wait_until(partial(_reaped, pid), 2.0)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait_for_banner(proc: subprocess.Popen[bytes], port: int, log: Path) -> bool:
    """True once sshd greets with ``SSH-2.0-``; False if sshd exited (log has why)."""
    deadline = time.monotonic() + _START_TIMEOUT
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((_HOST, port), timeout=2) as sock:
                data = b""
                while b"\n" not in data and len(data) < 512:
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    data += chunk
            if data.startswith(b"SSH-2.0-"):
                return True
            last_error = RuntimeError(f"unexpected banner {data!r}")
        except OSError as exc:
            last_error = exc
        time.sleep(0.05)
    raise RuntimeError(
        f"sshd did not answer on {_HOST}:{port} within {_START_TIMEOUT}s "
        f"({last_error}); log:\n{_log_tail(log)}"
    )


# --------------------------------------------------------------------------
# the context manager
# --------------------------------------------------------------------------


@contextmanager
def running_sshd(
    workdir: Path,
    *,
    user: str = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
    max_auth_tries: int = 6,
    auth_methods: str | None = None,
    password_authentication: bool = True,
    kbd_interactive: bool = True,
    pubkey: bool = True,
    sftp_flags: str = "",
    extra_global: str = "",
    extra_match: str = "",
    authorized_keys: Sequence[str] = (),
    match_block: Callable[[Path], str] | None = None,
    max_open_files: int | None = None,
) -> Iterator[SshdInfo]:
    """Start sshd on a free 127.0.0.1 port with a chrooted SFTP-only *user*.

    Host keys, sshd_config, pid file, log and known_hosts live in *workdir*;
    the chroot lives in a fresh root-owned directory under CHROOT_BASE which is
    removed on exit.  *authorized_keys* are OpenSSH public key lines accepted
    for *user* (kept outside the chroot, where StrictModes is satisfied).
    *match_block*, given the chroot's path, returns the text that replaces the generated
    ``Match User`` block (and with it every per-user setting above).
    *max_open_files* caps sshd's file descriptors (``prlimit``; its sessions inherit it), as a
    host with a low ``LimitNOFILE`` would.
    """
    _require_root("running_sshd")
    sshd = ensure_sshd()
    ensure_user(user, password)
    entry = pwd.getpwnam(user)

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    _PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)

    host_keys = _generate_host_keys(workdir)
    pid_file = workdir / "sshd.pid"
    config = workdir / "sshd_config"
    log = workdir / "sshd.log"
    known_hosts = workdir / "known_hosts"

    base = _make_base_dir()
    proc: subprocess.Popen[bytes] | None = None
    try:
        chroot = base / "chroot"
        chroot.mkdir(mode=0o755)
        chroot.chmod(0o755)
        web_root = chroot / "public_html"
        web_root.mkdir(mode=0o755)
        web_root.chmod(0o755)
        os.chown(web_root, entry.pw_uid, entry.pw_gid)
        _check_chroot_path(chroot)

        auth_keys_file = base / "authorized_keys"
        auth_keys_file.write_text("".join(f"{line.strip()}\n" for line in authorized_keys))
        auth_keys_file.chmod(0o644)

        for attempt in range(_PORT_ATTEMPTS):
            port = _free_port()
            config.write_text(
                _render_config(
                    port=port,
                    host_keys=host_keys,
                    pid_file=pid_file,
                    authorized_keys=auth_keys_file,
                    user=user,
                    chroot=chroot,
                    max_auth_tries=max_auth_tries,
                    auth_methods=auth_methods,
                    password_authentication=password_authentication,
                    kbd_interactive=kbd_interactive,
                    pubkey=pubkey,
                    sftp_flags=sftp_flags,
                    extra_global=extra_global,
                    extra_match=extra_match,
                    match_block=None if match_block is None else match_block(chroot),
                )
            )
            check = subprocess.run(
                [str(sshd), "-t", "-f", str(config)], capture_output=True, text=True
            )
            if check.returncode != 0:
                raise RuntimeError(f"sshd rejected {config}:\n{check.stderr}{check.stdout}")
            log.unlink(missing_ok=True)
            limit = ["prlimit", f"--nofile={max_open_files}", "--"] if max_open_files else []
            proc = subprocess.Popen(
                [*limit, str(sshd), "-D", "-f", str(config), "-E", str(log)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if _wait_for_banner(proc, port, log):
                break
            tail = _log_tail(log)
            proc = None
            if attempt + 1 < _PORT_ATTEMPTS and any(err in tail for err in _BIND_ERRORS):
                continue  # someone grabbed the port between our probe and sshd's bind
            raise RuntimeError(f"sshd exited during startup; log:\n{tail}")
        else:  # pragma: no cover - loop always breaks or raises
            raise RuntimeError("could not start sshd")

        pubs = [key.with_name(key.name + ".pub") for key in host_keys]
        known_hosts.write_text(
            "".join(f"[{_HOST}]:{port} {' '.join(pub.read_text().split()[:2])}\n" for pub in pubs)
        )
        yield SshdInfo(
            host=_HOST,
            port=port,
            user=user,
            password=password,
            chroot=chroot,
            web_root=web_root,
            known_hosts=known_hosts,
            log=log,
            config=config,
            host_key_fingerprints=[_fingerprint(pub) for pub in pubs],
        )
    finally:
        if proc is not None:
            _stop(proc)
        _remove_base_dir(base)
