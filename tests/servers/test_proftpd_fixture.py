"""Smoke test of the ProFTPD (mod_sftp) fixture: it starts, takes the password, jails the
client to the home and writes as the account; two variants run side by side."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.servers import smoke
from tests.servers.base import CompatServer
from tests.servers.proftpd import VARIANTS, running_proftpd


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, CompatServer]]:
    """The default server and the no-chmod one, running at the same time."""
    with ExitStack() as stack:
        yield {
            variant: stack.enter_context(
                running_proftpd(tmp_path_factory.mktemp(f"proftpd-{variant}"), variant)
            )
            for variant in ("default", "no-chmod")
        }


@pytest.mark.parametrize("variant", ["default", "no-chmod"])
def test_writes_land_in_the_web_root(servers: dict[str, CompatServer], variant: str) -> None:
    server = servers[variant]
    server.reset()
    data = f"hello from {variant}\n".encode() * 1000
    put = asyncio.run(smoke.put(server, "index.html", data))
    assert put.cwd == "/"  # DefaultRoot ~: the home is the client's root
    assert "index.html" in put.listing
    written = server.web_root / "index.html"
    assert written.read_bytes() == data
    st = written.stat()
    assert st.st_uid == server.login_dir.stat().st_uid != 0
    assert st.st_mode & 0o777 == 0o644  # Umask 022
    assert server.kind == ("proftpd" if variant == "default" else f"proftpd-{variant}")


def test_two_variants_at_once(servers: dict[str, CompatServer]) -> None:
    a, b = servers["default"], servers["no-chmod"]
    assert a.port != b.port
    assert a.login_dir != b.login_dir
    assert a.known_hosts.read_text() != b.known_hosts.read_text()


def test_reset_empties_the_web_root(servers: dict[str, CompatServer]) -> None:
    server = servers["default"]
    asyncio.run(smoke.put(server, "stale.txt", b"x"))
    (server.web_root / "sub").mkdir()
    server.reset()
    assert list(server.web_root.iterdir()) == []
    st = server.web_root.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (server.login_dir.stat().st_uid, 0o755)
    asyncio.run(smoke.put(server, "again.txt", b"y"))
    assert (server.web_root / "again.txt").read_bytes() == b"y"


def test_unknown_variant_is_refused(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="unknown ProFTPD variant"),
        running_proftpd(tmp_path, "nope"),
    ):
        pass
    assert "nope" not in VARIANTS
