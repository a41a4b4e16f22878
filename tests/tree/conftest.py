"""Shared machinery for the Tree conformance suite.

``tree_env`` runs a test once per implementation of the ``Tree`` protocol:

* ``local``: ``LocalTree(follow_symlinks=False)`` over a directory under ``tmp_path`` (the
  destination side of a pull);
* ``embedded``: ``RemoteTree`` over sftpmirror's own server;
* ``openssh``: ``RemoteTree`` over a real, chrooted OpenSSH ``internal-sftp`` account.

Each ``TreeEnv`` opens trees (``env.tree(sub)``: an async context manager) and knows the on-disk
directory of the tree's root, so a test sets things up and checks results on disk directly. The
on-disk helpers give what they make to the SFTP account (the test process is root), as the
account's own uploads would be.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from sftpmirror.engine.tree import TEMP_PREFIX, Tree, TreeError
from sftpmirror.transport.auth import ConnectOptions, Secret
from sftpmirror.transport.connect import open_session
from sftpmirror.trees.local import LocalTree
from sftpmirror.trees.remote import RemoteTree
from sftpmirror.url import RemoteSpec
from tests.conftest import Target, target_of
from tests.servers.matrix import LACKS, SERVERS, Servers

IMPLEMENTATIONS = [
    "local",
    "embedded",
    pytest.param("openssh", marks=pytest.mark.openssh),
    *(pytest.param(kind, marks=pytest.mark.compat) for kind in SERVERS),
]


@dataclass(frozen=True)
class TreeEnv:
    """One implementation under test: how to open its tree, and where its root lies on disk."""

    kind: str
    disk: Path  # the on-disk directory of the root of ``tree()``
    opener: Callable[[str], AbstractAsyncContextManager[Tree]]
    owner: tuple[int, int] | None = None  # (uid, gid) the server's files belong to

    @property
    def remote(self) -> bool:
        return self.kind != "local"

    @property
    def error_type(self) -> type[Exception]:
        """What a failed operation raises on every tree: the Tree error contract's item error
        (never asyncssh's or the OS's own)."""
        return TreeError

    def tree(self, sub: str = "") -> AbstractAsyncContextManager[Tree]:
        """The tree whose root is ``sub`` below the web root (``""``: the web root itself)."""
        return self.opener(sub)

    # -- on-disk helpers -------------------------------------------------------------------

    def path(self, rel: str) -> Path:
        return self.disk / rel if rel else self.disk

    def _own(self, path: Path) -> None:
        if self.owner is not None:
            os.chown(path, *self.owner, follow_symlinks=False)

    def mkdir(self, rel: str, mode: int = 0o755, mtime: int | None = None) -> Path:
        """Make ``rel`` and its missing parents (0o755); ``mode`` and ``mtime`` for ``rel``."""
        path = self.path(rel)
        missing = [p for p in [path, *path.parents] if not p.exists()]
        for p in reversed(missing):
            p.mkdir()
            p.chmod(0o755)
            self._own(p)
        path.chmod(mode)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    def write(self, rel: str, data: bytes, mode: int = 0o644, mtime: int | None = None) -> Path:
        path = self.path(rel)
        if not path.parent.exists():
            self.mkdir(str(Path(rel).parent))
        path.write_bytes(data)
        path.chmod(mode)
        self._own(path)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    def symlink(self, rel: str, target: str, mtime: int | None = None) -> Path:
        path = self.path(rel)
        path.symlink_to(target)
        self._own(path)
        if mtime is not None:
            os.utime(path, (mtime, mtime), follow_symlinks=False)
        return path

    def read(self, rel: str) -> bytes:
        return self.path(rel).read_bytes()

    def lstat(self, rel: str) -> os.stat_result:
        return self.path(rel).lstat()

    def mode(self, rel: str) -> int:
        return stat.S_IMODE(self.lstat(rel).st_mode)

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self.path(rel))

    def temp_files(self, rel_dir: str = "") -> list[str]:
        """Names in ``rel_dir`` that are upload temporaries (``.sftpmirror.*``)."""
        return sorted(n for n in os.listdir(self.path(rel_dir)) if n.startswith(TEMP_PREFIX))


def local_env(disk: Path) -> TreeEnv:
    disk.mkdir(parents=True, exist_ok=True)

    @asynccontextmanager
    async def opener(sub: str) -> AsyncIterator[Tree]:
        yield LocalTree(disk / sub if sub else disk, follow_symlinks=False)

    return TreeEnv("local", disk, opener)


def remote_env(target: Target) -> TreeEnv:
    spec = RemoteSpec(target.host, path="", user=target.user, port=target.port)
    options = ConnectOptions(
        password=Secret(target.password), known_hosts=target.known_hosts, timeout=15
    )

    @asynccontextmanager
    async def opener(sub: str) -> AsyncIterator[Tree]:
        root = posixpath.join(target.path, sub) if sub else target.path
        async with open_session(spec, options) as session:
            yield RemoteTree(session, root, f"{target.kind}:{root}")

    st = target.disk.stat()
    owner = (st.st_uid, st.st_gid) if target.kind != "embedded" else None
    return TreeEnv(target.kind, target.disk, opener, owner)


@pytest.fixture(params=IMPLEMENTATIONS)
def tree_env(request: pytest.FixtureRequest, tmp_path: Path) -> TreeEnv:
    """Each test using this runs once against every Tree implementation."""
    if request.param == "local":
        return local_env(tmp_path / "local" / "public_html")
    if request.param in SERVERS:
        servers: Servers = request.getfixturevalue("compat_servers")
        return remote_env(target_of(servers.get(request.param)))
    target: Target = request.getfixturevalue(request.param)
    return remote_env(target)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A conformance test marked ``needs(...)`` is not run against a matrix server that lacks
    one of those (``tests/servers/matrix.LACKS``): deselected, so the count says what ran."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        kind = callspec.params.get("tree_env") if callspec is not None else None
        marker = item.get_closest_marker("needs")
        lacking = LACKS.get(kind, frozenset()) if isinstance(kind, str) else frozenset()
        if marker is not None and lacking & set(marker.args):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
