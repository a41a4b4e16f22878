"""``sftpmirror init``: a commented sftpmirror.toml with one target, asked for on a terminal.

Kept apart from the other commands' bodies (``commands.py``): it needs none of the library but
the config's template, so it loads no asyncio, no engine and no client stack.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sftpmirror.cli.exits import die
from sftpmirror.config import starter_config
from sftpmirror.errors import SftpMirrorError, UsageError
from sftpmirror.url import parse_remote


def init(name: str, url: str | None, source: str | None, path: Path, force: bool) -> None:
    try:
        if path.exists() and not force:
            raise UsageError(f"{path} exists; not overwriting it (use --force)")
        guess = next((d for d in ("public", "_site", "site") if Path(d).is_dir()), "public")
        auth: str | None = None
        identity: str | None = None
        if sys.stdin.isatty():
            url = url or click.prompt("Server URL (sftp://user@host/path)", err=True)
            parse_remote(url)  # a mistake is said now, before the next question
            source = source or click.prompt("Directory to publish", default=guess, err=True)
            auth = click.prompt(
                "How does this account log in?",
                type=click.Choice(["password", "key"]),
                default="password",
                err=True,
            )
            if auth == "key":
                identity = click.prompt("Private key file", default="~/.ssh/id_ed25519", err=True)
        url = url or "sftp://user@example.org/public_html"
        source = source or guess
        parse_remote(url)
        text = starter_config(name, url, source, auth, identity)
        path.write_text(text, encoding="utf-8")
    except SftpMirrorError as e:
        sys.exit(die(e, False))
    except OSError as e:
        sys.exit(die(UsageError(f"cannot write {path}: {e.strerror}"), False))
    click.echo(f"wrote {path} (target {name}: {source} → {url})")
    click.echo(f"next: sftpmirror push --dry-run {name}")
