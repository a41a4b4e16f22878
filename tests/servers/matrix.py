"""The compatibility matrix: every SFTP server we can install from Debian's packages or PyPI,
started once per test session on 127.0.0.1 when a test first asks for it (``Servers``), its
web root emptied before each test. The fixtures (``compat``, ``compat_target``, and the tree
conformance suite's ``tree_env``) are in tests/conftest.py and tests/tree/conftest.py."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from functools import partial
from pathlib import Path

from tests.servers.base import CompatServer
from tests.servers.dropbear import running_dropbear
from tests.servers.gesftp import running_gesftpserver
from tests.servers.paramiko_server import running_paramiko
from tests.servers.proftpd import running_proftpd
from tests.servers.rclone import running_rclone

Starter = Callable[[Path], AbstractContextManager[CompatServer]]

#: kind → how to start it (the kind is also the test id).
SERVERS: dict[str, Starter] = {
    "proftpd": partial(running_proftpd, variant="default"),
    "proftpd-ignore-perms": partial(running_proftpd, variant="ignore-perms"),
    "proftpd-ignore-times": partial(running_proftpd, variant="ignore-times"),
    "proftpd-no-chmod": partial(running_proftpd, variant="no-chmod"),
    "rclone": running_rclone,
    "gesftpserver": running_gesftpserver,
    "dropbear": running_dropbear,
    "paramiko": running_paramiko,
}


class Servers:
    """The matrix's servers, each started on first use and stopped at the session's end."""

    def __init__(self, base: Path, stack: ExitStack) -> None:
        self.base = base
        self.stack = stack
        self.running: dict[str, CompatServer] = {}

    def get(self, kind: str) -> CompatServer:
        if kind not in self.running:
            workdir = self.base / kind
            workdir.mkdir()
            self.running[kind] = self.stack.enter_context(SERVERS[kind](workdir))
        server = self.running[kind]
        server.reset()
        return server


#: What each server does differently from OpenSSH's sftp-server, in the words of the tree
#: conformance suite's ``needs`` markers: a test that needs one is not run against a server
#: that lacks it (tests/tree/conftest.py). The deploy itself adapts to each (tests/compat).
#: - modes: a mode set is ignored or refused (the deploy creates files with their mode)
#: - mtimes: an mtime set is ignored (the manifest records the server's)
#: - rename-over-link: a rename onto a symbolic link replaces the link's target (the deploy
#:   removes a link before putting a file in its place)
#: - strict-errors: mkdir of an existing directory, remove of a directory, rmdir of a file
#:   succeed
#: - disk-writes: a file being written is not on disk before its close (VFS buffering)
#: - special-files: FIFOs and devices are not listed
#: - symlinks: symbolic links are not listed as links
#: - lstat: LSTAT follows a link (a link at the manifest's name reads as the file it names; the
#:   listing, from READDIR, still shows links as links)
LACKS: dict[str, frozenset[str]] = {
    "proftpd": frozenset({"lstat", "rename-over-link"}),
    "proftpd-ignore-perms": frozenset({"lstat", "rename-over-link", "modes"}),
    "proftpd-ignore-times": frozenset({"lstat", "rename-over-link", "mtimes"}),
    "proftpd-no-chmod": frozenset({"lstat", "rename-over-link", "modes"}),
    "rclone": frozenset(
        {"modes", "strict-errors", "disk-writes", "special-files", "symlinks", "rename-over-link"}
    ),
    "gesftpserver": frozenset(),
    "dropbear": frozenset(),
    "paramiko": frozenset({"symlinks"}),
}
