"""The flags push and pull share, declared, and the typed records they are read into.

Commands turn click's parameters into one typed, frozen record (``MirrorFlags``,
``ConnectionFlags``) at once; ``resolve.py`` fills in a target's values and turns the record into
the library's option records. Declaring the flags needs only click and ``sftpmirror.defaults``,
so ``--help`` loads nothing of the library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import click

from sftpmirror.defaults import (
    DEFAULT_CHMOD,
    DEFAULT_JOBS,
    DEFAULT_KEEP,
    DEFAULT_MANIFEST,
    DEFAULT_RECONNECTS,
    DEFAULT_TIMEOUT,
    PAGE_SUFFIXES,
)
from sftpmirror.methods import DEFAULT_MAX_KEYS

F = TypeVar("F", bound=Callable[..., Any])


def _apply(func: F, options: list[Callable[[F], F]]) -> F:
    for option in reversed(options):
        func = option(func)
    return func


def mirror_options(func: F) -> F:
    """Options of push and pull (connection options included)."""
    func = _apply(func, [
        click.option(
            "--config",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="sftpmirror.toml to read targets from (default: the nearest one up from here).",
        ),
        click.option(
            "--delete/--no-delete",
            default=False,
            help="Delete destination files not in the source that sftpmirror deployed (its "
            "manifest says which); others are kept and listed.",
        ),
        click.option(
            "--delete-foreign",
            is_flag=True,
            help="With --delete: delete also files sftpmirror did not deploy (not protected ones).",
        ),
        click.option(
            "--protect",
            "protect",
            multiple=True,
            metavar="PATTERN",
            help="Never delete these paths (gitignore style; repeatable), besides the default "
            ".well-known/, .htaccess, .user.ini, cgi-bin/.",
        ),
        click.option(
            "--no-protect",
            is_flag=True,
            help="Drop the default protected paths (those given with --protect stay).",
        ),
        click.option(
            "-n",
            "--dry-run",
            is_flag=True,
            help="Print what would be done, and why; change nothing.",
        ),
        click.option("-v", "--verbose", is_flag=True, help="Print each action as it is done."),
        click.option("-q", "--quiet", is_flag=True, help="Print errors only."),
        click.option(
            "--json", "as_json", is_flag=True, help="Print a summary object as JSON on stdout."
        ),
        click.option(
            "--json-lines", is_flag=True, help="Print one JSON object per event on stdout."
        ),
        click.option(
            "--exclude",
            "excludes",
            multiple=True,
            metavar="PATTERN",
            help="gitignore-style pattern; repeatable, adds to the target's. Excluded remote "
            "paths are never deleted.",
        ),
        click.option(
            "-j",
            "--jobs",
            type=click.IntRange(1, 256),
            default=DEFAULT_JOBS,
            show_default=True,
            help="Files in flight at once over the one connection.",
        ),
        click.option(
            "--reconnects",
            type=click.IntRange(0, 100),
            default=DEFAULT_RECONNECTS,
            show_default=True,
            metavar="N",
            help="Times a connection lost mid-run is made again (waits 2 s, then twice as long "
            "each time); the run then carries on. 0: stop at once (exit 3).",
        ),
        click.option(
            "--keep",
            type=click.IntRange(0, 1000),
            default=DEFAULT_KEEP,
            show_default=True,
            metavar="N",
            help="Keep the files the last N deploys replaced or deleted, on the server, so "
            "`sftpmirror rollback` puts them back without uploading (0: keep none).",
        ),
        click.option(
            "--refuse-older/--force",
            default=False,
            help="Refuse a source whose git commit is older than the live deploy's (an "
            "ancestor of it); --force deploys it anyway.",
        ),
        click.option(
            "--lock-wait",
            type=click.FloatRange(0, 86400),
            default=0.0,
            metavar="SECONDS",
            help="Wait this long for another deploy to the same destination to finish (its "
            "lock), then stop (exit 7). Default: stop at once.",
        ),
        click.option(
            "--release",
            type=click.Choice(["inplace", "symlink"]),
            default="inplace",
            show_default=True,
            help="push: symlink builds each deploy as a release beside the live one (unchanged "
            "files hard-linked) and makes it live by swapping the destination, a symbolic link, "
            "atomically; a rollback is one link swap (README: Releases).",
        ),
        click.option(
            "--break-lock",
            is_flag=True,
            help="Take the destination's deploy lock even if another deploy holds it (for a "
            "holder you know is gone; a dead one's is recovered by itself within a minute).",
        ),
        click.option(
            "--chmod",
            metavar="RULES",
            help=f"Modes to set, rsync syntax, applied to the source's bits (default "
            f"{DEFAULT_CHMOD}: a web-readable site whatever the umask; e.g. Fgo-w or D750,F640).",
        ),
        click.option("--perms", is_flag=True, help="Keep the source's permission bits."),
        click.option(
            "--no-perms", is_flag=True, help="Set no permission bits: the server's defaults."
        ),
        click.option(
            "--manifest",
            default=DEFAULT_MANIFEST,
            show_default=True,
            metavar="PATH",
            help="Remote manifest, relative to the remote directory (../NAME keeps it outside).",
        ),
        click.option("--no-manifest", is_flag=True, help="Compare by size and mtime only."),
        click.option(
            "--local-manifest",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Keep the manifest in this local file instead of on the server.",
        ),
        click.option(
            "--verify/--no-verify",
            default=False,
            help="Download and hash remote files the manifest cannot vouch for.",
        ),
        click.option(
            "--pages-last",
            default=",".join(PAGE_SUFFIXES),
            show_default=True,
            metavar="SUFFIXES",
            help="Files with these endings go up after all others (comma-separated).",
        ),
        click.option(
            "--allow-empty-source",
            is_flag=True,
            help="With --delete, allow an empty source to empty the destination.",
        ),
        click.option(
            "--max-delete",
            type=click.IntRange(0),
            metavar="N",
            help="Refuse to delete more than N files.",
        ),
        click.option(
            "--max-delete-percent",
            type=click.FloatRange(0, 100),
            default=50.0,
            show_default=True,
            help="Refuse to delete more than this share of the destination's files.",
        ),
    ])  # fmt: skip
    return connection_options(func)


def connection_options(func: F) -> F:
    return _apply(func, [
        click.option("--debug", is_flag=True, help="Trace the SSH conversation; tracebacks."),
        click.option(
            "--password-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Read the password from FILE (mode 600).",
        ),
        click.option(
            "--password-env",
            metavar="NAME",
            help="Read the password from environment variable NAME "
            "(default $SFTPMIRROR_PASSWORD, then $SSHPASS).",
        ),
        click.option(
            "--password-command",
            metavar="CMD",
            help="Run CMD (with the shell) and use its output as the password, "
            "e.g. 'pass show web/prod'.",
        ),
        click.option(
            "-i",
            "--identity",
            "identities",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Private key to log in with; only this key is offered.",
        ),
        click.option(
            "--auth",
            "auth_methods",
            metavar="METHODS",
            help="Methods to try, in order, e.g. 'password' or 'publickey,password' "
            "(publickey, keyboard-interactive, password).",
        ),
        click.option(
            "--max-keys",
            type=click.IntRange(0, 100),
            default=DEFAULT_MAX_KEYS,
            show_default=True,
            help="Keys from the agent and ssh_config offered at most (under MaxAuthTries).",
        ),
        click.option(
            "--known-hosts",
            type=click.Path(dir_okay=False, path_type=Path),
            help="known_hosts file (default ~/.ssh/known_hosts).",
        ),
        click.option(
            "--accept-new-host-key",
            is_flag=True,
            help="Trust and record the key of a host seen the first time (never a changed key).",
        ),
        click.option(
            "-p",
            "--port",
            type=click.IntRange(1, 65535),
            help="The server's port (as ssh -p; or sftp://host:PORT/path).",
        ),
        click.option(
            "-F",
            "--ssh-config",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="ssh_config file (default ~/.ssh/config).",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(1, 3600),
            default=DEFAULT_TIMEOUT,
            show_default=True,
            help="Seconds to wait for the connection and the login, and for any answer from a "
            "server while requests wait (a stalled server is dropped: exit 3).",
        ),
    ])  # fmt: skip


@dataclass(frozen=True, slots=True)
class ConnectionFlags:
    """The connection flags of push, pull and doctor, as click parsed them."""

    debug: bool = False
    password_file: Path | None = None
    password_env: str | None = None
    password_command: str | None = None
    identities: tuple[Path, ...] = ()
    auth_methods: str | None = None
    max_keys: int = DEFAULT_MAX_KEYS
    known_hosts: Path | None = None
    accept_new_host_key: bool = False
    ssh_config: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    port: int | None = None


@dataclass(frozen=True, slots=True)
class MirrorFlags(ConnectionFlags):
    """Every flag of push and pull, as click parsed them (then filled in by a target)."""

    config: Path | None = None
    delete: bool = False
    dry_run: bool = False
    verbose: bool = False
    quiet: bool = False
    as_json: bool = False
    json_lines: bool = False
    excludes: tuple[str, ...] = ()
    jobs: int = DEFAULT_JOBS
    reconnects: int = DEFAULT_RECONNECTS
    lock_wait: float = 0.0
    break_lock: bool = False
    delete_foreign: bool = False
    protect: tuple[str, ...] = ()
    no_protect: bool = False
    keep: int = DEFAULT_KEEP
    refuse_older: bool = False
    release: str = "inplace"
    chmod: str | None = None
    perms: bool = False
    no_perms: bool = False
    manifest: str = DEFAULT_MANIFEST
    no_manifest: bool = False
    local_manifest: Path | None = None
    verify: bool = False
    pages_last: str = ",".join(PAGE_SUFFIXES)
    allow_empty_source: bool = False
    max_delete: int | None = None
    max_delete_percent: float = 50.0

    @property
    def machine(self) -> bool:
        """JSON on stdout (``--json`` or ``--json-lines``)."""
        return self.as_json or self.json_lines


FlagsT = TypeVar("FlagsT", ConnectionFlags, MirrorFlags)


def flags_from(cls: type[FlagsT], params: Mapping[str, Any]) -> FlagsT:
    """The typed record of click's parameters (the ones the record names; tuples for lists)."""
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in params:
            value = params[f.name]
            values[f.name] = tuple(value) if isinstance(value, list | tuple) else value
    return cls(**values)
