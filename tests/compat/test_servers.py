"""What each server of the matrix makes different, and what sftpmirror does about it: doctor
names it with a fix in the server's own words, docs/servers.md holds the probed profile, and
the failures seen in the field (tests/servers/*.py say which server did what) stay fixed."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from sftpmirror.engine.tree import read_chunks
from sftpmirror.transport.auth import ConnectOptions, Secret
from sftpmirror.transport.connect import open_session
from sftpmirror.transport.profile import Profile
from sftpmirror.url import RemoteSpec
from tests.conftest import Target, target_of
from tests.e2e.helpers import make_site, run_cli
from tests.servers.base import CompatServer
from tests.servers.matrix import Servers

DOCS = Path(__file__).resolve().parents[2] / "docs" / "servers.md"

# What doctor's "server" lines say of each (substrings), fixes in the server's own words.
DOCTOR_SAYS = {
    "proftpd": ["no limits@openssh.com: at most 64"],
    "proftpd-ignore-perms": ["ProFTPD acknowledges and ignores chmod", "IgnoreSFTPSetPerms"],
    "proftpd-ignore-times": ["ProFTPD ignores the mtimes", "IgnoreSFTPSetTimes"],
    "proftpd-no-chmod": ["ProFTPD refuses chmod", "<Limit SITE_CHMOD> DenyAll"],
    "rclone": ["rclone acknowledges and ignores chmod", "--file-perms", "no working hardlink"],
    "gesftpserver": ["no limits@openssh.com: at most 64"],
    "dropbear": ["chmod, mtimes and out-of-order writes take effect"],
    "paramiko": ["posix-rename works though it is not advertised"],
}


def test_doctor_names_what_the_server_does(compat_target: Target) -> None:
    result = run_cli("doctor", compat_target.url(), target=compat_target)
    assert result.exit_code == 0, result.output
    server = "\n".join(
        line for line in result.output.splitlines() if "server" in line or "fix" in line
    )
    for words in DOCTOR_SAYS[compat_target.kind]:
        assert words in result.output, f"{compat_target.kind}: {words!r} not in\n{server}"


async def _profile(target: Target) -> Profile:
    spec = RemoteSpec(target.host, path="", user=target.user, port=target.port)
    options = ConnectOptions(
        password=Secret(target.password), known_hosts=target.known_hosts, timeout=15
    )
    async with open_session(spec, options) as session:
        return await session.probe(target.path)


def row(kind: str, profile: Profile) -> str:
    """The server's row of docs/servers.md, from its probed profile."""

    def said(value: bool | None, yes: str = "yes", no: str = "no") -> str:
        return "?" if value is None else yes if value else no

    chmod = "refused" if profile.chmod_refused else said(profile.chmod, no="ignored")
    handles = str(profile.max_handles) + ("" if profile.limits else " (ours)")
    does = "; ".join(profile.adapted()) or "nothing different"
    cells = [
        kind,
        chmod,
        said(profile.create_mode),
        said(profile.mtimes, no="ignored"),
        said(not profile.sequential_writes),
        said(profile.posix_rename) + ("" if profile.posix_rename_advertised else " (unadvertised)"),
        said(profile.hardlink),
        handles,
        does,
    ]
    return "| " + " | ".join(cells) + " |"


def test_docs_servers_table_is_the_probed_profile(compat: CompatServer) -> None:
    """docs/servers.md is checked by the matrix run: each server's row is what its probe says."""
    expected = row(compat.kind, asyncio.run(_profile(target_of(compat))))
    rows = [line for line in DOCS.read_text().splitlines() if line.startswith(f"| {compat.kind} |")]
    assert rows == [expected], f"docs/servers.md: the {compat.kind} row should read\n{expected}"


def test_a_mode_the_server_cannot_make_fails_the_run(
    compat_servers: Servers, tmp_path: Path
) -> None:
    """rclone ignores chmod and the mode given at creation (files are 0644): a site asking for
    0600 cannot be deployed as asked; the run says so, uploads nothing, and exits non-zero."""
    target = target_of(compat_servers.get("rclone"))
    site = make_site(tmp_path / "site")
    result = run_cli("push", "--chmod", "D755,F600", str(site), target.url(), target=target)
    assert result.exit_code == 1, result.output
    assert "cannot be made: the server ignores chmod" in result.output
    files = [p.relative_to(target.disk) for p in target.disk.rglob("*") if p.is_file()]
    assert [p for p in files if not p.parts[0].startswith(".sftpmirror")] == []


def test_many_jobs_stay_within_a_small_handle_limit(
    compat_servers: Servers, tmp_path: Path
) -> None:
    """gesftpserver allows 128 open handles, and breaks past them ("invalid handle", then the
    session dies); it states no limit, so at most 64 are open, whatever --jobs says."""
    target = target_of(compat_servers.get("gesftpserver"))
    site = tmp_path / "site"
    for d in range(20):
        for f in range(20):
            path = site / f"d{d:02}" / f"p{f:02}.html"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(200))
    result = run_cli("push", "--jobs", "256", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "reconnected" not in result.output
    assert sum(1 for p in target.disk.rglob("*.html")) == 400


def test_first_contact_with_dropbear_offers_ed25519_first(
    compat_servers: Servers, tmp_path: Path
) -> None:
    """Dropbear with only an ED25519 host key still advertises rsa-sha2-256, and fails an
    assertion when asked for it: an unknown host is asked for ED25519 first, as ssh does."""
    server = compat_servers.get("dropbear")
    known = tmp_path / "known_hosts"
    known.write_text("")
    target = Target(
        server.kind, server.host, server.port, server.user, server.password, known, server.web_root
    )
    site = make_site(tmp_path / "site")
    result = run_cli("push", "--accept-new-host-key", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert re.search(r"ssh-ed25519 AAAA", known.read_text())


@pytest.mark.parametrize("kind", ["proftpd", "rclone"])
def test_a_file_replacing_a_link_leaves_its_target(
    compat_servers: Servers, tmp_path: Path, kind: str
) -> None:
    """ProFTPD's rename onto a symbolic link replaces the file the link points to: a deploy
    putting a file where a link was must not overwrite the link's target."""
    server = compat_servers.get(kind)
    target = target_of(server)
    (target.disk / "target.html").write_bytes(b"the host's own page\n")
    (target.disk / "alias.html").symlink_to("target.html")
    site = tmp_path / "site"
    site.mkdir()
    (site / "alias.html").write_bytes(b"ours\n")
    result = run_cli("push", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert (target.disk / "target.html").read_bytes() == b"the host's own page\n"
    assert not (target.disk / "alias.html").is_symlink()
    assert (target.disk / "alias.html").read_bytes() == b"ours\n"


# What one read gets from each server that states no read limit (learnt on a large file), and
# from one that states it (Dropbear runs OpenSSH's sftp-server: limits@openssh.com).
READ_LEARNT = {
    "proftpd": 256 << 10,
    "rclone": 32 << 10,
    "gesftpserver": 256 << 10,
    "dropbear": 255 << 10,  # stated: OpenSSH's sftp-server
    "paramiko": 256 << 10,
}


@pytest.mark.parametrize("kind", sorted(READ_LEARNT))
def test_the_read_size_is_learnt_where_the_server_states_none(
    compat_servers: Servers, kind: str
) -> None:
    """Without limits@openssh.com asyncssh reads 16 KiB at a time; the first large file shows
    what the server answers whole (rclone caps reads at 32 KiB: asking it more is slower)."""
    server = compat_servers.get(kind)
    target = target_of(server)
    data = os.urandom(3 << 20)
    path = target.disk / "big.bin"
    path.write_bytes(data)
    st = server.login_dir.stat()
    os.chown(path, st.st_uid, st.st_gid)

    async def body() -> tuple[int | None, int | None, bytes]:
        spec = RemoteSpec(target.host, path="", user=target.user, port=target.port)
        options = ConnectOptions(
            password=Secret(target.password), known_hosts=target.known_hosts, timeout=15
        )
        async with open_session(spec, options) as session:
            before = session.read_len
            reader = await session.open("public_html/big.bin", len(data))
            try:  # (a read may answer less than asked: the next one starts where it ended)
                got = b"".join([chunk async for chunk in read_chunks(reader, 1 << 20)])
            finally:
                await reader.close()
            return before, session.read_len, got

    before, learnt, got = asyncio.run(body())
    assert got == data
    assert learnt == READ_LEARNT[kind]
    assert before == (None if kind != "dropbear" else READ_LEARNT[kind])
