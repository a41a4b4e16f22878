"""The command line: flags and help over the library; exit codes mapped here and nowhere else."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import click

from . import __version__, api
from .api import DEFAULT_JOBS, MirrorOptions, Result
from .auth import (
    DEFAULT_MAX_KEYS,
    ConnectOptions,
    Secret,
    parse_auth_methods,
    password_from_env,
    read_password_file,
)
from .cli_sshd import sshd as sshd_group
from .doctor import doctor as run_doctor
from .doctor import render
from .errors import ExitStatus, SftpMirrorError, UsageError
from .guards import DeleteLimits
from .manifest import DEFAULT_NAME as DEFAULT_MANIFEST
from .model import Op
from .plan import PAGE_SUFFIXES, describe
from .progress import Reporter, TextReporter
from .server import DEFAULT_USER, ServerConfig, generate_password, serve
from .url import is_remote, parse_remote

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

EPILOG_PUSH = """\b
Examples:
  sftpmirror push public sftp://user01@example.org/public_html
  sftpmirror push --delete --dry-run public user01@example.org:public_html
  SFTPMIRROR_PASSWORD=... sftpmirror push public sftp://user01@example.org/public_html
"""


def _die(error: SftpMirrorError, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    click.echo(f"sftpmirror: error: {error.message}", err=True)
    for line in error.details:
        click.echo(f"  {line}", err=True)
    if error.hint:
        click.echo(f"sftpmirror: hint: {error.hint}", err=True)
    return int(error.exit_status)


def _run(coro: Coroutine[Any, Any, T], debug: bool) -> tuple[T | None, int]:
    """Run the coroutine; map our errors and Ctrl-C to (None, exit status)."""
    try:
        return asyncio.run(coro), 0
    except SftpMirrorError as e:
        return None, _die(e, debug)
    except KeyboardInterrupt:
        click.echo("sftpmirror: interrupted", err=True)
        return None, int(ExitStatus.INTERRUPTED)


def mirror_options(func: F) -> F:
    options = [
        click.option("--delete", is_flag=True, help="Delete destination files not in the source."),
        click.option(
            "-n",
            "--dry-run",
            is_flag=True,
            help="Print what would be done, and why; change nothing.",
        ),
        click.option("-v", "--verbose", is_flag=True, help="Print each action as it is done."),
        click.option(
            "--exclude",
            "excludes",
            multiple=True,
            metavar="PATTERN",
            help="gitignore-style pattern; repeatable. Excluded remote paths are never deleted.",
        ),
        click.option(
            "-j",
            "--jobs",
            type=click.IntRange(1, 256),
            default=DEFAULT_JOBS,
            show_default=True,
            help="Files in flight at once over the one connection.",
        ),
        click.option("--no-perms", is_flag=True, help="Do not copy permission bits."),
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
            "--verify",
            is_flag=True,
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
    ]
    for option in reversed(options):
        func = option(func)
    return connection_options(func)


def connection_options(func: F) -> F:
    options = [
        click.option("--debug", is_flag=True, help="Trace the SSH conversation; tracebacks."),
        click.option(
            "--password-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Read the password from FILE (else $SFTPMIRROR_PASSWORD, else a prompt).",
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
            "-F",
            "--ssh-config",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="ssh_config file (default ~/.ssh/config).",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(1, 3600),
            default=30.0,
            show_default=True,
            help="Seconds to wait for the connection and the login.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is when the record comes (click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"debug: {self.format(record)}", file=sys.stderr)


def _setup(debug: bool) -> None:
    for name in ("asyncssh", "sftpmirror"):
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
            logger.removeHandler(handler)
        if debug:
            logger.addHandler(_StderrHandler())
        logger.setLevel(logging.DEBUG if debug else logging.NOTSET)
    if debug:
        asyncssh.set_debug_level(2)


def _connect_options(kw: dict[str, Any]) -> ConnectOptions:
    password: Secret | None = None
    if kw["password_file"] is not None:
        password = read_password_file(kw["password_file"])
    else:
        password = password_from_env()
    methods = kw["auth_methods"]
    return ConnectOptions(
        password=password,
        prompt_password=True,
        identities=tuple(kw["identities"]),
        auth=parse_auth_methods(methods) if methods is not None else None,
        max_keys=kw["max_keys"],
        known_hosts=kw["known_hosts"],
        accept_new_host_key=kw["accept_new_host_key"],
        ssh_config=kw["ssh_config"],
        timeout=kw["timeout"],
    )


def _mirror_options(kw: dict[str, Any]) -> MirrorOptions:
    return MirrorOptions(
        delete=kw["delete"],
        dry_run=kw["dry_run"],
        excludes=tuple(kw["excludes"]),
        jobs=kw["jobs"],
        perms=not kw["no_perms"],
        manifest=None if kw["no_manifest"] else kw["manifest"],
        local_manifest=kw["local_manifest"],
        verify=kw["verify"],
        page_suffixes=tuple(x.strip().lower() for x in kw["pages_last"].split(",") if x.strip()),
        limits=DeleteLimits(
            allow_empty_source=kw["allow_empty_source"],
            max_delete=kw["max_delete"],
            max_delete_percent=kw["max_delete_percent"],
        ),
    )


def _summary(result: Result) -> str:
    report = result.report
    if report.dry_run:
        counts = result.plan.counts()
        parts = [f"{counts[op]} {op.value}" for op in Op if counts[op]]
        return f"dry run: would do {', '.join(parts) or 'nothing'}; nothing was changed"
    parts = [f"{report.done[op]} {op.value}" for op in Op if report.done[op]]
    line = (
        f"done: {', '.join(parts) or 'nothing to do'}; "
        f"{_human(report.bytes_copied)} in {report.elapsed:.1f}s"
    )
    if report.failures:
        line += f"; {len(report.failures)} FAILED"
    if report.not_run:
        line += f"; {report.not_run} deletion(s) not run because of the failures"
    return line


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _finish(result: Result | None, status: int) -> None:
    if result is not None:
        if result.report.dry_run:
            for action in result.plan.conflicts:
                click.echo(f"conflict {action.path}  ({action.reason})")
            for action in result.plan.actions():
                click.echo(describe(action))
        click.echo(_summary(result))
        if result.report.failures:
            status = int(ExitStatus.FAILED_ITEMS)
    sys.exit(status)


@click.group(name="sftpmirror", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sftpmirror")
def main() -> None:
    """Mirror a directory to, or from, a server you can only reach over SFTP."""


Runner = Callable[[MirrorOptions, ConnectOptions, Reporter], Coroutine[Any, Any, Result]]


def _mirror_command(runner: Runner, kw: dict[str, Any]) -> None:
    debug = kw["debug"]
    _setup(debug)
    try:
        reporter = TextReporter(verbose=kw["verbose"] or debug)
        coro = runner(_mirror_options(kw), _connect_options(kw), reporter)
    except SftpMirrorError as e:
        sys.exit(_die(e, debug))
    _finish(*_run(coro, debug))


@main.command(epilog=EPILOG_PUSH)
@click.argument("local_dir", type=click.Path(path_type=Path))
@click.argument("dest")
@mirror_options
def push(local_dir: Path, dest: str, **kw: Any) -> None:
    """Mirror LOCAL_DIR into the remote directory DEST (like lftp "mirror -R").

    DEST is sftp://user@host[:port]/path or user@host:path; the host may be an
    alias from ~/.ssh/config. The path is relative to the login directory
    unless it starts with // (URL) or / (scp style).
    """
    if not is_remote(dest) and is_remote(str(local_dir)):
        sys.exit(_die(UsageError("DEST is not remote but LOCAL_DIR is: did you mean pull?"), False))
    _mirror_command(lambda mo, co, rep: api.push(local_dir, dest, mo, co, rep), kw)


@main.command()
@click.argument("source")
@click.argument("local_dir", type=click.Path(path_type=Path))
@mirror_options
def pull(source: str, local_dir: Path, **kw: Any) -> None:
    """Mirror the remote directory SOURCE into LOCAL_DIR (like lftp "mirror")."""
    if not is_remote(source) and is_remote(str(local_dir)):
        sys.exit(
            _die(UsageError("SOURCE is not remote but LOCAL_DIR is: did you mean push?"), False)
        )
    _mirror_command(lambda mo, co, rep: api.pull(source, local_dir, mo, co, rep), kw)


@main.command()
@click.argument("dest")
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(dest: str, as_json: bool, **kw: Any) -> None:
    """Check the connection, login and destination DEST, step by step, with fixes.

    Exits 0 when no problem is found, 1 otherwise. Takes the same connection
    options as push; the destination gets a probe file, written and removed.
    """
    _setup(kw["debug"])
    try:
        coro = run_doctor(parse_remote(dest), _connect_options(kw))
    except SftpMirrorError as e:
        sys.exit(_die(e, kw["debug"]))
    report, status = _run(coro, kw["debug"])
    if report is None:
        sys.exit(status)
    click.echo(json.dumps(report.as_json(), indent=2) if as_json else render(report))
    sys.exit(0 if report.ok else int(ExitStatus.FAILED_ITEMS))


@main.command("serve")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory the client sees as / (created if missing).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=2222, show_default=True)
@click.option("--user", default=DEFAULT_USER, show_default=True, help="The one login name.")
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
    from_env = password_from_env()
    password = from_env or generate_password()
    root.mkdir(parents=True, exist_ok=True)
    config = ServerConfig(
        root=root,
        password=password,
        user=user,
        host=host,
        port=port,
        max_auth_tries=max_auth_tries,
        state_dir=state_dir,
        authorized_keys=authorized_keys,
    )

    shown_root = root.resolve()

    async def run() -> None:
        async with serve(config) as info:
            click.echo(f"sftpmirror serve: {info.url()} (root {shown_root})")
            click.echo(f"host key {info.fingerprint}")
            click.echo(f"known_hosts line: {info.known_hosts_line}")
            if from_env is None:
                click.echo(f"password: {password.reveal()}")
            if ready_file is not None:
                data = {"port": info.port, "user": info.user, "host": info.host}
                data |= {"fingerprint": info.fingerprint, "known_hosts": info.known_hosts_line}
                tmp = ready_file.with_name(ready_file.name + ".tmp")
                tmp.write_text(json.dumps(data) + "\n")
                os.replace(tmp, ready_file)
            sys.stdout.flush()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()

    try:
        asyncio.run(run())
    except OSError as e:
        click.echo(f"sftpmirror: error: cannot listen on {host}:{port}: {e.strerror}", err=True)
        sys.exit(int(ExitStatus.USAGE))


main.add_command(sshd_group)

__all__ = ["main"]
