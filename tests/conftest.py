"""Shared fixtures: the two real servers every remote test runs against.

``embedded``: sftpmirror's own server (``sftpmirror serve``), in a thread with its own loop.
``openssh``: a real OpenSSH sshd with a chrooted ``internal-sftp`` account (tests/openssh.py);
one per session, its web root emptied before each test. Nothing is skipped when sshd is
missing: the fixture installs it, and fails loudly when it cannot.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from sftpmirror.server import ServerConfig, ServerInfo, serve
from sftpmirror.transport.auth import Secret
from tests.openssh import SshdInfo, running_sshd
from tests.servers.base import CompatServer
from tests.servers.matrix import SERVERS, Servers

EMBEDDED_PASSWORD = "embedded-test-pw"


class ThreadedServer:
    """Run ``serve(config)`` on a private event loop in a daemon thread."""

    def __init__(
        self, config: ServerConfig, sftp_class: type[asyncssh.SFTPServer] = asyncssh.SFTPServer
    ) -> None:
        self.config = config
        self.sftp_class = sftp_class
        self.info: ServerInfo | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # reported to the starting thread
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self.config, self.sftp_class) as info:
            self.info = info
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> ServerInfo:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None or self.info is None:
            raise RuntimeError(f"embedded server did not start: {self._error!r}")
        return self.info

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@dataclass(frozen=True)
class Target:
    """A remote directory on a running server, and where it lies on this machine's disk."""

    kind: str
    host: str
    port: int
    user: str
    password: str
    known_hosts: Path
    disk: Path  # the directory the URL's path names, seen from outside the server
    path: str = "public_html"

    @classmethod
    def of(cls, info: SshdInfo) -> Target:
        """The web root of a running OpenSSH fixture."""
        return cls(
            "openssh", info.host, info.port, info.user, info.password, info.known_hosts,
            info.web_root,
        )  # fmt: skip

    def url(self, path: str | None = None) -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}/{self.path if path is None else path}"


@pytest.fixture(scope="session")
def _hash_caches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hash-caches")


@pytest.fixture(autouse=True)
def hash_cache_dir(
    _hash_caches: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets a hash cache directory of its own (made when first written): none
    writes to the user's ``~/.cache`` (``trees/hashcache.py``)."""
    where = _hash_caches / hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    monkeypatch.setenv("SFTPMIRROR_CACHE_DIR", str(where))
    monkeypatch.delenv("SFTPMIRROR_NO_HASH_CACHE", raising=False)
    return where


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-state")


@contextmanager
def embedded_server(
    tmp_path: Path,
    state_dir: Path,
    sftp_class: type[asyncssh.SFTPServer] = asyncssh.SFTPServer,
    **config: Any,
) -> Iterator[Target]:
    """An embedded server whose ``public_html`` is a fresh directory under ``tmp_path``."""
    root = tmp_path / "srv"
    (root / "public_html").mkdir(parents=True)
    server_config = ServerConfig(
        root=root, password=Secret(EMBEDDED_PASSWORD), state_dir=state_dir, **config
    )
    with ThreadedServer(server_config, sftp_class) as info:
        known_hosts = tmp_path / "known_hosts.embedded"
        known_hosts.write_text(info.known_hosts_line + "\n")
        yield Target(
            "embedded",
            info.host,
            info.port,
            info.user,
            EMBEDDED_PASSWORD,
            known_hosts,
            root / "public_html",
        )


@pytest.fixture
def embedded(tmp_path: Path, state_dir: Path) -> Iterator[Target]:
    with embedded_server(tmp_path, state_dir) as target:
        yield target


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdInfo]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as info:
        yield info


@pytest.fixture
def openssh(sshd: SshdInfo) -> Target:
    for child in sshd.web_root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    return Target.of(sshd)


@pytest.fixture(params=["embedded", "openssh"])
def target(request: pytest.FixtureRequest) -> Target:
    """Each test using this runs once against each real server."""
    result: Target = request.getfixturevalue(request.param)
    return result


# Fixtures that start (or stand on) the real OpenSSH sshd, and the parameter values that pick it.
SSHD_FIXTURES = {"sshd", "openssh"}


def needs_sshd(item: pytest.Item) -> bool:
    """Does this test start or use the OpenSSH fixture (directly, or through a parameter)?"""
    names = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    params = list(callspec.params.values()) if callspec is not None else []
    return bool(names & SSHD_FIXTURES) or any(
        isinstance(p, str) and p in SSHD_FIXTURES for p in params
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``-m "not openssh"`` really runs server-free: every test that uses sshd is marked; so is
    every test that uses a server of the compatibility matrix (``-m "not compat"``)."""
    for item in items:
        if needs_sshd(item) and item.get_closest_marker("openssh") is None:
            item.add_marker(pytest.mark.openssh)
        if "compat_servers" in getattr(item, "fixturenames", ()) and (
            item.get_closest_marker("compat") is None
        ):
            item.add_marker(pytest.mark.compat)


# --- the compatibility matrix (tests/servers/matrix.py) ------------------------------------


@pytest.fixture(scope="session")
def compat_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with ExitStack() as stack:
        yield Servers(tmp_path_factory.mktemp("compat"), stack)


@pytest.fixture(params=list(SERVERS))
def compat(request: pytest.FixtureRequest, compat_servers: Servers) -> CompatServer:
    """Each test using this runs once against each server of the matrix."""
    return compat_servers.get(request.param)


def target_of(server: CompatServer) -> Target:
    """A matrix server as the end-to-end tests see one."""
    return Target(
        server.kind, server.host, server.port, server.user, server.password,
        server.known_hosts, server.web_root,
    )  # fmt: skip


@pytest.fixture
def compat_target(compat: CompatServer) -> Target:
    return target_of(compat)
