"""The command line: its commands, their flags and help; a thin layer over the library.

This module declares; ``commands.py`` (``starter.py`` for ``init``) does. Declaring needs only
click and ``sftpmirror.defaults``, so ``--help``, ``--version`` and shell completion load
nothing of the library: each command imports what it does when it runs, and with it the
library (asyncssh only for the commands that connect).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

from sftpmirror import __version__
from sftpmirror.cli.options import connection_options, mirror_options
from sftpmirror.cli.sshd import sshd as sshd_group
from sftpmirror.defaults import CONFIG_NAME
from sftpmirror.errors import SftpMirrorError

SERVE_USER = "deploy"  # sftpmirror serve's one login name (server.DEFAULT_USER)

EPILOG_PUSH = """\b
Examples:
  sftpmirror push public sftp://user01@example.org/public_html
  sftpmirror push --delete --dry-run public user01@example.org:public_html
  SFTPMIRROR_PASSWORD=... sftpmirror push public sftp://user01@example.org/public_html
  sftpmirror push production            # [targets.production] of sftpmirror.toml
  sftpmirror push --json production     # a summary object for CI on stdout
"""

EPILOG_PULL = """\b
Examples:
  sftpmirror pull sftp://user01@example.org/public_html backup
  sftpmirror pull --delete user01@example.org:public_html backup
  sftpmirror pull production backup     # the target's url into backup/
"""

EPILOG_ADOPT = """\b
Examples:
  sftpmirror adopt public sftp://user01@example.org/public_html
  sftpmirror adopt --verify production   # hash the server's files: certainty, not mtimes
"""

EPILOG_ROLLBACK = """\b
Examples:
  sftpmirror rollback production            # the deploy before the live one, back
  sftpmirror rollback --dry-run production  # what it would put back
  sftpmirror rollback --to 20261202T031500Z-1a2b production
"""

EPILOG_HISTORY = """\b
Examples:
  sftpmirror history production
  sftpmirror history --json sftp://user01@example.org/public_html
"""

EPILOG_DOCTOR = """\b
Examples:
  sftpmirror doctor sftp://user01@example.org/public_html
  sftpmirror doctor --auth password --json user01@example.org:public_html
"""

EPILOG_INIT = """\b
Examples:
  sftpmirror init                       # asks, on a terminal
  sftpmirror init --url sftp://user01@example.org/public_html --source public
"""

EPILOG_SERVE = """\b
Examples:
  sftpmirror serve --root /tmp/www --port 2222
  SFTPMIRROR_PASSWORD=secret sftpmirror serve --root /tmp/www --ready-file /tmp/ready.json
"""


class _Main(click.Group):
    """The command group; a usage error click finds in ``push``/``pull`` arguments still
    gives the ``--json`` object on stdout, so a CI job can always parse it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["sftpmirror.argv"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            argv: list[str] = ctx.meta.get("sftpmirror.argv", [])
            if argv and argv[0] in ("push", "pull"):
                from sftpmirror.cli import commands  # the summary object, on this error only

                commands.usage_error(argv, e)
            raise


@click.group(name="sftpmirror", cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sftpmirror")
def main() -> None:
    """Mirror a directory to, or from, a server you can only reach over SFTP.

    \b
    Shell completion (bash; zsh and fish alike):
      eval "$(_SFTPMIRROR_COMPLETE=bash_source sftpmirror)"
    """


def _complete_target(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Target names from the sftpmirror.toml found from here (shell completion)."""
    from sftpmirror.config import find_config, load_config  # completion only

    path = ctx.params.get("config") or find_config()
    if path is None or ctx.params.get("args"):
        return []
    try:
        names = load_config(path).targets
    except SftpMirrorError:
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


_ARGS = click.argument("args", nargs=-1, metavar="[TARGET | LOCAL_DIR DEST]",
                       shell_complete=_complete_target)  # fmt: skip


@main.command(epilog=EPILOG_PUSH)
@_ARGS
@mirror_options
@click.pass_context
def push(ctx: click.Context, /, args: tuple[str, ...], **kw: Any) -> None:
    """Mirror LOCAL_DIR into the remote directory DEST (like lftp "mirror -R").

    DEST is sftp://user@host[:port]/path or user@host:path; the host may be an
    alias from ~/.ssh/config. The path is relative to the login directory
    unless it starts with // (URL) or / (scp style).

    With TARGET (or nothing, when sftpmirror.toml has one target), the local
    directory, DEST and any option come from [targets.TARGET] in sftpmirror.toml;
    options given here win.
    """
    from sftpmirror.cli import commands  # the library: loaded when a command runs

    commands.push(ctx, args)


@main.command(epilog=EPILOG_PULL)
@click.argument("args", nargs=-1, metavar="[TARGET [LOCAL_DIR] | SOURCE LOCAL_DIR]",
                shell_complete=_complete_target)  # fmt: skip
@mirror_options
@click.pass_context
def pull(ctx: click.Context, /, args: tuple[str, ...], **kw: Any) -> None:
    """Mirror the remote directory SOURCE into LOCAL_DIR (like lftp "mirror").

    With TARGET, SOURCE is the target's url and LOCAL_DIR, unless given, its
    source directory.
    """
    from sftpmirror.cli import commands

    commands.pull(ctx, args)


@main.command(epilog=EPILOG_ADOPT)
@_ARGS
@mirror_options
@click.pass_context
def adopt(ctx: click.Context, /, args: tuple[str, ...], **kw: Any) -> None:
    """Take over a site another tool deployed: record the remote files that match the
    source in the manifest (hashed on the server with --verify), so a later --delete may
    remove them. Nothing is uploaded or deleted."""
    from sftpmirror.cli import commands

    commands.adopt(ctx, args)


@main.command(epilog=EPILOG_ROLLBACK)
@click.argument("where", required=False, metavar="[TARGET | DEST]", shell_complete=_complete_target)
@click.option(
    "--to",
    "to",
    metavar="ID",
    help="The deploy to put back (default: the one before the live one).",
)
@mirror_options
@click.pass_context
def rollback(ctx: click.Context, /, where: str | None, to: str | None, **kw: Any) -> None:
    """Put back the previous deploy (or --to ID) from the backups kept on the server.

    Links and renames only: nothing is uploaded. A rollback is recorded in the history
    like a deploy, so it can be undone in turn. --dry-run shows what it would do.
    """
    from sftpmirror.cli import commands

    commands.rollback(ctx, where, to)


@main.command(epilog=EPILOG_HISTORY)
@click.argument("where", required=False, metavar="[TARGET | DEST]", shell_complete=_complete_target)
@mirror_options
@click.pass_context
def history(ctx: click.Context, /, where: str | None, **kw: Any) -> None:
    """List the deploys recorded on the server: id, kind, time, who, commit, counts."""
    from sftpmirror.cli import commands

    commands.history(ctx, where)


@main.command(epilog=EPILOG_INIT)
@click.option("--target", "name", default="production", show_default=True, help="Target name.")
@click.option("--url", help="sftp://user@host[:port]/path (asked for on a terminal).")
@click.option("--source", help="Directory to publish (default: public, _site or site if present).")
@click.option(
    "--config",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(CONFIG_NAME),
    show_default=True,
    help="File to write.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(name: str, url: str | None, source: str | None, path: Path, force: bool) -> None:
    """Write a commented sftpmirror.toml with one target.

    On a terminal it asks for what was not given; elsewhere it asks nothing and
    writes placeholders to edit.
    """
    from sftpmirror.cli import starter

    starter.init(name, url, source, path, force)


@main.command(epilog=EPILOG_DOCTOR)
@click.argument("dest")
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(dest: str, as_json: bool, **kw: Any) -> None:
    """Check the connection, login and destination DEST, step by step, with fixes.

    Exits 0 when no problem is found, 1 otherwise. Takes the same connection
    options as push; the destination gets a probe file, written and removed.
    """
    from sftpmirror.cli import commands

    commands.doctor(dest, as_json, kw)


@main.command("serve", epilog=EPILOG_SERVE)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory the client sees as / (created if missing).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=2222, show_default=True)
@click.option("--user", default=SERVE_USER, show_default=True, help="The one login name.")
@click.option(
    "--max-auth-tries",
    type=click.IntRange(1, 100),
    default=6,
    show_default=True,
    help="Failed attempts before 'Too many authentication failures' (as OpenSSH MaxAuthTries).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the host key is kept (default $XDG_STATE_HOME/sftpmirror/serve).",
)
@click.option(
    "--authorized-keys",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Public keys allowed to log in, besides the password.",
)
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write JSON (port, user, fingerprint, known_hosts line) here once listening.",
)
def serve_cmd(
    root: Path,
    host: str,
    port: int,
    user: str,
    max_auth_tries: int,
    state_dir: Path | None,
    authorized_keys: Path | None,
    ready_file: Path | None,
) -> None:
    """Run a throwaway SFTP server on loopback, confined to ROOT (for demos and tests).

    The password is $SFTPMIRROR_PASSWORD, or a random one printed at start.
    """
    from sftpmirror.cli import commands

    commands.serve(root, host, port, user, max_auth_tries, state_dir, authorized_keys, ready_file)


main.add_command(sshd_group)

__all__ = ["main"]
