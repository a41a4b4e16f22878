"""``sftpmirror sshd check`` and ``sftpmirror sshd snippet``: the server side, for its admin.

The audit (``sshd.audit``, ``sshd.config``) is loaded when ``check`` runs, not for ``--help``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from sftpmirror.defaults import MATCH_ADDR, MATCH_LADDR, SSHD_CONFIG, SSHD_PARSERS
from sftpmirror.errors import ExitStatus, SftpMirrorError, UsageError
from sftpmirror.sshd.snippet import KEYS, PASSWORD, UPLOAD_DIR, snippet

EPILOG_CHECK = """\b
Examples:
  sftpmirror sshd check --user deploy
  sftpmirror sshd check --config /etc/ssh/sshd_config --json
"""

EPILOG_SNIPPET = """\b
Examples:
  sftpmirror sshd snippet --user deploy --root /srv/sftp/deploy --password
  sftpmirror sshd snippet --user deploy --root /srv/sftp/deploy --keys
"""


def _fail(error: SftpMirrorError) -> None:
    click.echo(f"sftpmirror: error: {error.message}", err=True)
    if error.hint:
        click.echo(f"sftpmirror: hint: {error.hint}", err=True)
    sys.exit(int(error.exit_status))


@click.group("sshd")
def sshd() -> None:
    """Server side: audit or write sshd's settings for an SFTP-only chrooted account."""


@sshd.command("check", epilog=EPILOG_CHECK)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(SSHD_CONFIG),
    show_default=True,
    help="sshd_config to read.",
)
@click.option(
    "--user",
    "users",
    multiple=True,
    metavar="NAME",
    help="Account to check; repeatable (default: every user named on a Match User/Group line "
    "of a ChrootDirectory or ForceCommand block).",
)
@click.option(
    "--parser",
    type=click.Choice(SSHD_PARSERS),
    default="auto",
    show_default=True,
    help="sshd: 'sshd -T -C'; builtin: our own parser; auto: sshd -T when it can run.",
)
@click.option("--addr", default=MATCH_ADDR, show_default=True, help="Client address for Match.")
@click.option("--host", help="Client host name for Match (default: the address).")
@click.option("--laddr", default=MATCH_LADDR, show_default=True, help="Local address for Match.")
@click.option("--lport", type=click.IntRange(1, 65535), default=22, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_cmd(
    config_path: Path,
    users: tuple[str, ...],
    parser: str,
    addr: str,
    host: str | None,
    laddr: str,
    lport: int,
    as_json: bool,
) -> None:
    """Check an SFTP-only account's effective sshd settings and files, with fixes.

    Reads the settings sshd would use for the account's connection and checks
    the chroot's ownership, an upload directory, ForceCommand internal-sftp and
    its flags, forwarding, the login methods the account can complete, keys,
    and MaxAuthTries. Exits 0 when no problem is found, 1 otherwise, 2 on bad
    input.
    """
    from sftpmirror.sshd.audit import check, render, sftp_accounts  # the audit, when it runs
    from sftpmirror.sshd.config import Connection, parse

    where = Connection("", (), host or addr, addr, laddr, lport)
    try:
        names = list(users) or sftp_accounts(parse(config_path))
        if not names:
            raise UsageError(
                f"{config_path} names no chrooted or ForceCommand account on a Match line",
                hint="name the account with --user",
            )
        reports = [check(config_path, name, parser=parser, where=where) for name in names]
    except SftpMirrorError as e:
        _fail(e)
        return
    ok = all(r.ok for r in reports)
    if as_json:
        body = {"ok": ok, "accounts": [r.as_json() for r in reports]}
        click.echo(json.dumps(body, indent=2))
    else:
        click.echo("\n\n".join(render(r) for r in reports))
    sys.exit(0 if ok else int(ExitStatus.FAILED_ITEMS))


@sshd.command("snippet", epilog=EPILOG_SNIPPET)
@click.option("--user", required=True, metavar="NAME", help="The SFTP-only account.")
@click.option("--root", required=True, metavar="DIR", help="Its chroot directory (absolute).")
@click.option("--keys", "auth", flag_value=KEYS, help="Log in with keys (kept outside the chroot).")
@click.option(
    "--password",
    "auth",
    flag_value=PASSWORD,
    default=True,
    help="Log in with a password (default).",
)
@click.option(
    "--upload-dir",
    default=UPLOAD_DIR,
    show_default=True,
    help="The account's writable directory inside the chroot.",
)
def snippet_cmd(user: str, root: str, auth: str, upload_dir: str) -> None:
    """Print a Match User block for an SFTP-only chrooted account, and the
    commands that create its chroot with the ownership sshd requires."""
    try:
        click.echo(snippet(user, root, auth, upload_dir).render(), nl=False)
    except SftpMirrorError as e:
        _fail(e)
