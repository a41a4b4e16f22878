"""A small SFTP server built on paramiko, as a server of the compatibility matrix.

It stands in for hosts that run a paramiko-based server, so it is what such servers typically
are: paramiko's own loopback test server (``tests/_stub_sftp.py``) with password login and the
paths confined to a root directory. Nothing paramiko lacks is added. What that means for a
client, as paramiko (5.1 here) does it:

* SFTP version 3; the only extension advertised is ``check-file``. ``posix-rename@openssh.com``
  is handled (``posix_rename`` below) but not advertised; ``hardlink@openssh.com``,
  ``limits@openssh.com``, ``statvfs`` and ``fsync`` are answered with OP_UNSUPPORTED.
* Files are opened with ``os.open(path, flags, mode)``: the mode is the client's permissions
  attribute, or 0o666, minus the server's umask (0o022 here, as a daemon usually has).
* SETSTAT/FSETSTAT apply permissions with ``os.chmod``, uid/gid with ``os.chown``, times with
  ``os.utime`` and a size by truncating, by path (paramiko's ``SFTPServer.set_file_attr``).

The server runs in its own process (``python -m tests.servers.paramiko_server --root DIR
--port N --key KEYFILE --user U --password-file F [--log FILE]``; the password is read from the
file, never taken from argv), so paramiko's threads never block a test's event loop. Each
connection gets a thread; paramiko's ``Transport`` runs the SFTP session in its own thread.

Confinement: a client path is ``root + canonicalize(path)`` (paramiko's ``canonicalize`` makes
it absolute and removes ``..``), and a path that resolves, through symlinks, outside the root is
refused with PERMISSION_DENIED. The login directory (``/`` for the client) is the root.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import IO, Any

import paramiko
from paramiko import SFTPAttributes, SFTPHandle, SFTPServer, SFTPServerInterface
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.sftp import SFTP_FAILURE, SFTP_OK, SFTP_PERMISSION_DENIED

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

__all__ = ["RootedSFTPServer", "main", "running_paramiko"]

_REPO = Path(__file__).resolve().parents[2]
_UMASK = 0o022
_O666 = 0o666
log = logging.getLogger("paramiko_server")


# --------------------------------------------------------------------------
# the server (runs in the child process)
# --------------------------------------------------------------------------


class _Escape(Exception):
    """A client path that resolves outside the root."""


class PasswordServer(paramiko.ServerInterface):
    """Password login for one user; session channels and the ``sftp`` subsystem only."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        user_ok = hmac.compare_digest(username.encode(), self.user.encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        if user_ok and password_ok:
            return AUTH_SUCCESSFUL
        log.info("password login refused for %r", username)
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class RootedSFTPHandle(SFTPHandle):
    """paramiko's stub handle: reads and writes go through one file object (``SFTPHandle``
    seeks when a request's offset is not where the last one ended)."""

    filename: str
    readfile: IO[bytes]
    writefile: IO[bytes]

    def stat(self) -> SFTPAttributes | int:
        try:
            return SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as e:
            return SFTPServer.convert_errno(e.errno or 0)

    def chattr(self, attr: SFTPAttributes) -> int:
        # Python has no fchown/fchmod-with-times in one call: set by the stored path
        try:
            SFTPServer.set_file_attr(self.filename, attr)
            return SFTP_OK
        except OSError as e:
            return SFTPServer.convert_errno(e.errno or 0)


class RootedSFTPServer(SFTPServerInterface):
    """paramiko's stub SFTP server over ``root``, with paths confined to it."""

    def __init__(
        self, server: paramiko.ServerInterface, *args: Any, root: str, **kwargs: Any
    ) -> None:
        super().__init__(server, *args, **kwargs)
        self.root = os.path.realpath(root)

    # -- paths -------------------------------------------------------------

    def _inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root + os.sep)

    def _realpath(self, path: str, *, follow: bool = True) -> str:
        """The local path of a client path; raise _Escape if it resolves outside the root
        (``follow=False``: only its directory must, the last component may be a symlink)."""
        local = self.root + self.canonicalize(path)
        if follow:
            resolved = os.path.realpath(local)
        else:
            parent, name = os.path.split(local.rstrip(os.sep) or os.sep)
            resolved = os.path.join(os.path.realpath(parent), name)
        if not self._inside(resolved):
            log.info("refused %r: resolves outside the root", path)
            raise _Escape(path)
        return local

    # -- SFTPServerInterface -----------------------------------------------

    def list_folder(self, path: str) -> list[SFTPAttributes] | int:
        try:
            local = self._realpath(path)
            out = []
            for fname in os.listdir(local):
                full = os.path.join(local, fname)
                try:
                    st = os.stat(full)
                except FileNotFoundError:  # a dangling symlink: list the link itself
                    st = os.lstat(full)
                attr = SFTPAttributes.from_stat(st)
                attr.filename = fname
                out.append(attr)
            return out
        except _Escape:
            return SFTP_PERMISSION_DENIED
        except OSError as e:
            return SFTPServer.convert_errno(e.errno or 0)

    def stat(self, path: str) -> SFTPAttributes | int:
        try:
            return SFTPAttributes.from_stat(os.stat(self._realpath(path)))
        except _Escape:
            return SFTP_PERMISSION_DENIED
        except OSError as e:
            return SFTPServer.convert_errno(e.errno or 0)

    def lstat(self, path: str) -> SFTPAttributes | int:
        try:
            return SFTPAttributes.from_stat(os.lstat(self._realpath(path, follow=False)))
        except _Escape:
            return SFTP_PERMISSION_DENIED
        except OSError as e:
            return SFTPServer.convert_errno(e.errno or 0)

    def open(self, path: str, flags: int, attr: SFTPAttributes) -> SFTPHandle | int:
        try:
            local = self._realpath(path)
            mode = getattr(attr, "st_mode", None)
            fd = os.open(local, flags, _O666 if mode is None else mode)
        except _Escape:
            return SFTP_PERMISSION_DENIED
        except OSError as e:
            return SFTPServer.convert_errno(e.errno or 0)
        if (flags & os.O_CREAT) and attr is not None:
            attr._flags &= ~attr.FLAG_PERMISSIONS  # type: ignore[attr-defined]  # os.open did
            try:
                SFTPServer.set_file_attr(local, attr)
            except OSError as e:
                os.close(fd)
                return SFTPServer.convert_errno(e.errno or 0)
        if flags & os.O_WRONLY:
            fstr = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            fstr = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            fstr = "rb"
        try:
            f = os.fdopen(fd, fstr)
        except OSError as e:
            os.close(fd)
            return SFTPServer.convert_errno(e.errno or 0)
        handle = RootedSFTPHandle(flags)
        handle.filename = local
        handle.readfile = f
        handle.writefile = f
        return handle

    def remove(self, path: str) -> int:
        try:
            os.remove(self._realpath(path, follow=False))
        except _Escape:
            return SFTP_PERMISSION_DENIED
        except OSError as e:
            return SFTPServer.convert_errno(e.errno or 0)
        return SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        # SFTP v3 RENAME: refuse to replace an existing target (paramiko's documented rule)
        try:
            old = self._realpath(oldpath, follow=False)
            new = self._realpath(newpath, follow=False)
            if os.path.lexists(new):
                return SFTP_FAILURE
            os.rename(old, new)
        except _Escape:
            return SFTP_PERMISSION_DENIED
        except OSError as e:
            return SFTPServer.convert_errno(e.errno or 0)
        return SFTP_OK

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        try:
            os.rename(self._realpath(oldpath, follow=False), self._realpath(newpath, follow=False))
        except _Escape:
            return SFTP_PERMISSION_DENIED
        except OSError as e:
            return SFTPServer.convert_errno(e.errno or 0)
        return SFTP_OK

    def mkdir(self, path: str, attr: SFTPAttributes) -> int:
        try:
            local = self._realpath(path, follow=False)
            os.mkdir(local)
            if attr is not None:
                SFTPServer.set_file_attr(local, attr)
        except _Escape:
            return SFTP_PERMISSION_DENIED
        except OSError as e:
            return SFTPServer.convert_errno(e.errno or 0)
        return SFTP_OK

    def rmdir(self, path: str) -> int:
        try:
            os.rmdir(self._realpath(path, follow=False))
        except _Escape:
            return SFTP_PERMISSION_DENIED
        except OSError as e:
            return SFTPServer.convert_errno(e.errno or 0)
        return SFTP_OK

    def chattr(self, path: str, attr: SFTPAttributes) -> int:
        try:
            SFTPServer.set_file_attr(self._realpath(path), attr)
        except _Escape:
            return SFTP_PERMISSION_DENIED
        except OSError as e:
            return SFTPServer.convert_errno(e.errno or 0)
        return SFTP_OK

    def symlink(self, target_path: str, path: str) -> int:
        try:
            local = self._realpath(path, follow=False)
        except _Escape:
            return SFTP_PERMISSION_DENIED
        if target_path.startswith("/"):
            # an absolute target means one under the root
            target_path = os.path.join(self.root, target_path.lstrip("/"))
        elif not self._inside(os.path.realpath(os.path.join(os.path.dirname(local), target_path))):
            return SFTP_PERMISSION_DENIED
        try:
            os.symlink(target_path, local)
        except OSError as e:
            return SFTPServer.convert_errno(e.errno or 0)
        return SFTP_OK

    def readlink(self, path: str) -> str | int:
        try:
            target = os.readlink(self._realpath(path, follow=False))
        except _Escape:
            return SFTP_PERMISSION_DENIED
        except OSError as e:
            return SFTPServer.convert_errno(e.errno or 0)
        if os.path.isabs(target):  # show it as the client sees the tree
            if not self._inside(target):
                return SFTP_PERMISSION_DENIED
            target = "/" + target[len(self.root) :].lstrip("/")
        return target


def _serve_connection(
    sock: socket.socket, host_key: paramiko.PKey, user: str, password: str, root: str
) -> None:
    transport = paramiko.Transport(sock)
    try:
        transport.add_server_key(host_key)
        transport.set_subsystem_handler("sftp", SFTPServer, RootedSFTPServer, root=root)
        transport.start_server(server=PasswordServer(user, password))
    except (paramiko.SSHException, EOFError, OSError) as exc:
        log.info("connection failed before login: %s", exc)
        transport.close()
        return
    transport.join()  # the transport thread runs the session until the client leaves


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--key", required=True, type=Path, help="ed25519 private host key")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", required=True, type=Path)
    parser.add_argument("--log", type=Path, help="log file (default: stderr)")
    args = parser.parse_args(argv)

    logging.basicConfig(
        filename=args.log,
        level=logging.INFO,
        format="%(asctime)s %(threadName)s %(name)s %(levelname)s: %(message)s",
    )
    os.umask(_UMASK)
    password = args.password_file.read_text().rstrip("\n")
    host_key = paramiko.Ed25519Key.from_private_key_file(str(args.key))
    root = str(args.root.resolve(strict=True))
    signal.signal(signal.SIGTERM, _on_sigterm)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((HOST, args.port))
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", HOST, args.port, exc)
        return 1
    listener.listen(64)
    log.info("paramiko %s SFTP server on %s:%d, root %s", paramiko.__version__, HOST,
             args.port, root)  # fmt: skip
    try:
        while True:
            sock, peer = listener.accept()
            log.info("connection from %s:%d", *peer)
            threading.Thread(
                target=_serve_connection,
                args=(sock, host_key, args.user, password, root),
                name=f"conn-{peer[1]}",
                daemon=True,
            ).start()
    finally:
        listener.close()


# --------------------------------------------------------------------------
# the fixture side (runs in the test process)
# --------------------------------------------------------------------------


@contextmanager
def running_paramiko(workdir: Path) -> Iterator[CompatServer]:
    """Start the paramiko SFTP server in a child process on 127.0.0.1, serving
    ``workdir/served`` (the login directory, holding ``public_html``) to ``COMPAT_USER``."""
    # paramiko comes from PyPI (pyproject's test extras); apt only for ssh-keygen
    apt_install("openssh-client")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    key = workdir / "paramiko_host_ed25519_key"
    pub = ssh_host_key(key)
    password_file = workdir / "paramiko_password"
    password_file.touch(mode=0o600)
    password_file.chmod(0o600)
    password_file.write_text(COMPAT_PASSWORD + "\n")
    log_file = workdir / "paramiko_server.log"
    known_hosts = workdir / "known_hosts"
    login_dir = served_dir(workdir / "served")

    def launch(port: int) -> subprocess.Popen[bytes]:
        log_file.unlink(missing_ok=True)
        with log_file.open("ab") as err:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.servers.paramiko_server",
                    "--root",
                    str(login_dir),
                    "--port",
                    str(port),
                    "--key",
                    str(key),
                    "--user",
                    COMPAT_USER,
                    "--password-file",
                    str(password_file),
                    "--log",
                    str(log_file),
                ],
                cwd=_REPO,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )

    proc, port = start_on_free_port("paramiko SFTP server", launch, [log_file])
    try:
        yield compat_server(
            kind="paramiko",
            port=port,
            public_keys=[pub],
            known_hosts=known_hosts,
            login_dir=login_dir,
            log=log_file,
            notes=(
                "posix-rename@openssh.com works but is not advertised (only check-file is)",
                "no hardlink@openssh.com, limits@openssh.com, statvfs or fsync",
            ),
        )
    finally:
        stop(proc)


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        sys.exit(main())
