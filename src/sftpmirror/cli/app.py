"""The command line: flags and help over the library; exit codes mapped here and nowhere else."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem

from sftpmirror import __version__
from sftpmirror.cli import stopping
from sftpmirror.cli.options import (
    ConnectionFlags,
    MirrorFlags,
    apply_target,
    connect_options,
    flags_from,
    mirror_options,
    mirror_options_from,
    with_port,
)
from sftpmirror.cli.options import connection_options as connection_options
from sftpmirror.cli.sshd import sshd as sshd_group
from sftpmirror.config import CONFIG_NAME, Config, find_config, load_config, starter_config
from sftpmirror.engine.mirror import MirrorOptions
from sftpmirror.engine.model import Op, Plan
from sftpmirror.engine.plan import describe
from sftpmirror.errors import (
    ExitStatus,
    InternalError,
    Interrupted,
    SafetyError,
    SftpMirrorError,
    UsageError,
)
from sftpmirror.reporting.summary import Run, exit_status, summary_line, summary_object
from sftpmirror.reporting.text import (
    JsonLinesReporter,
    NullReporter,
    Reporter,
    Tee,
    TextReporter,
    human,
)
from sftpmirror.result import Result
from sftpmirror.transport.auth import ConnectOptions, password_from_env
from sftpmirror.url import is_remote, parse_remote, redact

T = TypeVar("T")
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
        return stopping.run(coro), 0
    except SftpMirrorError as e:
        return None, _die(e, debug)
    except KeyboardInterrupt:
        return None, _die(Interrupted("interrupted"), debug)
    except Exception as e:  # anything else is still one line and an exit code
        return None, _die(InternalError.of(e), debug)


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
        from sftpmirror.transport.connect import debug_logging

        debug_logging()


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
            flags = argv[1 : argv.index("--")] if "--" in argv else argv[1:]
            lines = "--json-lines" in flags
            if argv and argv[0] in ("push", "pull") and (lines or "--json" in flags):
                error = UsageError(e.format_message())
                _echo_summary(summary_object(None, run=Run(argv[0]), error=error), lines=lines)
            raise


def _echo_summary(obj: dict[str, Any], *, lines: bool) -> None:
    """The summary object on stdout: indented for --json, the last event for --json-lines."""
    if lines:
        click.echo(json.dumps({"event": "summary", **obj}))
    else:
        click.echo(json.dumps(obj, indent=2))


@click.group(name="sftpmirror", cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sftpmirror")
def main() -> None:
    """Mirror a directory to, or from, a server you can only reach over SFTP.

    \b
    Shell completion (bash; zsh and fish alike):
      eval "$(_SFTPMIRROR_COMPLETE=bash_source sftpmirror)"
    """


class _Warnings(NullReporter):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def warning(self, message: str) -> None:
        self.messages.append(message)


def _reporters(flags: MirrorFlags) -> tuple[Reporter, AbstractContextManager[Any], _Warnings]:
    """What to show, where: JSON on stdout when asked; a live display when stderr is a terminal,
    plain lines when not; only errors with --quiet. Warnings are kept for the JSON summary."""
    kept = _Warnings()
    machine = flags.machine
    verbose = flags.verbose or flags.debug  # with JSON on stdout, the lines go to stderr
    reporters: list[Reporter] = [kept]
    live: AbstractContextManager[Any] = nullcontext()
    if flags.json_lines:
        reporters.append(JsonLinesReporter())
    if not flags.quiet and sys.stderr.isatty() and not flags.debug:
        from sftpmirror.reporting.live import (
            LiveReporter,  # rich costs 30 ms to import; only terminals need it
        )

        display = LiveReporter(verbose=verbose, stdout_free=not machine)
        reporters.append(display)
        live = display
    else:
        out = sys.stderr if machine else sys.stdout
        reporters.append(TextReporter(verbose=verbose, quiet=flags.quiet, out=out))
    return Tee(*reporters), live, kept


def _complete_target(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Target names from the sftpmirror.toml found from here (shell completion)."""
    path = ctx.params.get("config") or find_config()
    if path is None or ctx.params.get("args"):
        return []
    try:
        names = load_config(path).targets
    except SftpMirrorError:
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def _config(flags: MirrorFlags) -> Config:
    path = flags.config or find_config()
    if path is None:
        raise UsageError(
            f"no {CONFIG_NAME} here or in a parent directory",
            hint="give LOCAL_DIR and DEST, or write one with: sftpmirror init",
        )
    return load_config(path)


def _resolve(
    ctx: click.Context, command: str, args: tuple[str, ...], flags: MirrorFlags
) -> tuple[str, str, str | None, MirrorFlags]:
    """(local dir, remote, target name, flags) from the arguments, a target filling in the
    flags the command line did not set."""
    local_first = command == "push"
    if len(args) > 2:
        raise UsageError(f"too many arguments: {' '.join(args[2:])}")
    if len(args) == 2 and not local_first and is_remote(args[1]) and not is_remote(args[0]):
        raise UsageError("SOURCE is not remote but LOCAL_DIR is: did you mean push?")
    if len(args) == 2 and (command == "push" or is_remote(args[0])):
        local, remote = args if local_first else args[::-1]
        if not is_remote(remote) and is_remote(local):
            other = "pull" if local_first else "push"
            which = "DEST" if local_first else "SOURCE"
            raise UsageError(f"{which} is not remote but LOCAL_DIR is: did you mean {other}?")
        return local, remote, None, flags
    if len(args) == 1 and is_remote(args[0]):
        usage = "LOCAL_DIR DEST" if local_first else "SOURCE LOCAL_DIR"
        raise UsageError(f"missing the local directory: give {usage}, or a TARGET name")
    target = _config(flags).target(args[0] if args else None)
    flags = apply_target(ctx, target, flags, command)
    local = args[1] if len(args) == 2 else str(target.source)
    return local, target.url, target.name, flags


Runner = Callable[[str, str, MirrorOptions, ConnectOptions, Reporter], Coroutine[Any, Any, Result]]


def _mirror_command(
    ctx: click.Context, command: str, runner: Runner, args: tuple[str, ...]
) -> None:
    flags = flags_from(MirrorFlags, ctx.params)
    debug = flags.debug
    _setup(debug)
    began = time.monotonic()
    run = Run(command)
    result: Result | None = None
    error: SftpMirrorError | None = None
    kept = _Warnings()
    try:
        local, remote, target, flags = _resolve(ctx, command, args, flags)
        remote = with_port(remote, flags)
        source, dest = (local, remote) if command == "push" else (remote, local)
        run = Run(command, redact(source), redact(dest), target)
        reporter, live, kept = _reporters(flags)
        coro = runner(local, remote, mirror_options_from(flags), connect_options(flags), reporter)
        with live:
            result = stopping.run(coro)
        status = exit_status(result)
    except SftpMirrorError as e:
        if isinstance(e, SafetyError) and e.plan is not None and not flags.machine:
            for action in e.plan.actions():  # a dry run refused: what it would have done
                click.echo(describe(action))
        error, status = e, _die(e, debug)
    except KeyboardInterrupt:
        error = Interrupted("interrupted", hint="a new run picks up where this one stopped")
        status = _die(error, debug)
    except Exception as e:  # out of memory, a bug: still one line, the code and the JSON
        error = InternalError.of(e)
        status = _die(error, debug)
    elapsed = time.monotonic() - began
    if result is None and error is not None and error.done is not None:
        result = Result(Plan(()), error.done)  # what was done before the error: counts stay true
    if flags.machine:
        obj = summary_object(
            result, run=run, elapsed=elapsed, warnings=kept.messages, error=error,
            exit_code=status,
        )  # fmt: skip
        _echo_summary(obj, lines=flags.json_lines)
        if result is not None and not flags.quiet:
            click.echo(summary_line(result, elapsed), err=True)
    elif result is not None:
        if result.report.dry_run:
            for action in result.plan.conflicts:
                click.echo(f"conflict {action.path}  ({action.reason})")
            for action in result.plan.actions():
                click.echo(describe(action))
        if not flags.quiet:
            click.echo(summary_line(result, elapsed))
    sys.exit(status)


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
    from sftpmirror import api

    _mirror_command(ctx, "push", lambda lo, re, mo, co, rep: api.push(lo, re, mo, co, rep), args)


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
    from sftpmirror import api

    _mirror_command(ctx, "pull", lambda lo, re, mo, co, rep: api.pull(re, lo, mo, co, rep), args)


def _destination(
    ctx: click.Context, where: str | None, flags: MirrorFlags
) -> tuple[str, MirrorFlags]:
    """The remote location named by a target (or given), with the target's flags."""
    if where is not None and is_remote(where):
        return with_port(where, flags), flags
    target = _config(flags).target(where)
    flags = apply_target(ctx, target, flags)
    return with_port(target.url, flags), flags


@main.command(epilog=EPILOG_ADOPT)
@_ARGS
@mirror_options
@click.pass_context
def adopt(ctx: click.Context, /, args: tuple[str, ...], **kw: Any) -> None:
    """Take over a site another tool deployed: record the remote files that match the
    source in the manifest (hashed on the server with --verify), so a later --delete may
    remove them. Nothing is uploaded or deleted."""
    from sftpmirror import api

    flags = flags_from(MirrorFlags, ctx.params)
    _setup(flags.debug)
    try:
        local, remote, _, flags = _resolve(ctx, "push", args, flags)
        reporter, live, _ = _reporters(flags)
        coro = api.adopt(
            local, with_port(remote, flags), mirror_options_from(flags), connect_options(flags),
            reporter,
        )  # fmt: skip
        with live:
            done = stopping.run(coro)
    except SftpMirrorError as e:
        sys.exit(_die(e, flags.debug))
    except KeyboardInterrupt:
        sys.exit(_die(Interrupted("interrupted"), flags.debug))
    how = f" ({done.hashed} hashed on the server)" if done.hashed else " (by size and mtime)"
    click.echo(
        f"adopted {done.matched} file(s){how}; {done.differ} differ and {done.missing} are "
        "missing on the server: the next push sends them"
    )
    sys.exit(0)


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
    from sftpmirror import api

    flags = flags_from(MirrorFlags, ctx.params)
    _setup(flags.debug)
    error: SftpMirrorError | None = None
    result: Result | None = None
    restored = None
    run = Run("rollback")
    try:
        remote, flags = _destination(ctx, where, flags)
        run = Run(
            "rollback", None, redact(remote), where if where and not is_remote(where) else None
        )
        reporter, live, _ = _reporters(flags)
        coro = api.rollback(
            remote, mirror_options_from(flags), connect_options(flags), reporter, to=to
        )
        with live:
            restored, result = stopping.run(coro)
        status = exit_status(result)
    except SftpMirrorError as e:
        error, status = e, _die(e, flags.debug)
    except KeyboardInterrupt:
        error = Interrupted("interrupted")
        status = _die(error, flags.debug)
    if flags.machine:
        obj = summary_object(result, run=run, error=error, exit_code=status)
        obj["restored"] = restored
        _echo_summary(obj, lines=flags.json_lines)
    elif result is not None:
        for action in result.plan.actions():
            if result.report.dry_run or flags.verbose:
                click.echo(describe(action))
        verb = "would put back" if result.report.dry_run else "put back"
        counts = result.plan.counts()
        click.echo(
            f"{verb} {restored}: {counts[Op.REPLACE]} file(s) restored, {counts[Op.DELETE]} "
            "removed; nothing uploaded"
        )
    sys.exit(status)


@main.command(epilog=EPILOG_HISTORY)
@click.argument("where", required=False, metavar="[TARGET | DEST]", shell_complete=_complete_target)
@mirror_options
@click.pass_context
def history(ctx: click.Context, /, where: str | None, **kw: Any) -> None:
    """List the deploys recorded on the server: id, kind, time, who, commit, counts."""
    from sftpmirror import api

    flags = flags_from(MirrorFlags, ctx.params)
    _setup(flags.debug)
    try:
        remote, flags = _destination(ctx, where, flags)
        coro = api.history(remote, mirror_options_from(flags), connect_options(flags))
    except SftpMirrorError as e:
        sys.exit(_die(e, flags.debug))
    records, status = _run(coro, flags.debug)
    if records is None:
        sys.exit(status)
    if flags.machine:
        click.echo(json.dumps({"deploys": records}, indent=2))
        sys.exit(0)
    live = records[-1].get("live") if records else None
    for r in records:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(str(r.get("time", 0)))))
        mark = "*" if r.get("id") == live else " "
        commit = str(r.get("commit") or "")[:10]
        done: dict[str, Any] = r.get("counts") if isinstance(r.get("counts"), dict) else {}  # type: ignore[assignment]
        counts = ", ".join(f"{n} {op}" for op, n in done.items())
        extra = f" (put back {r.get('live')})" if r.get("kind") == "rollback" else ""
        backup = "" if r.get("backup") else "  [no backup]"
        click.echo(
            f"{mark} {r.get('id')}  {r.get('kind')!s:<8} {when}  {r.get('user')}@"
            f"{r.get('host')}  {commit:<10}  {counts}{extra}{backup}"
        )
    if not records:
        click.echo("no deploy recorded yet")
    else:
        held = sum(int(str(r.get("backup_bytes") or 0)) for r in records if r.get("backup"))
        kept = sum(1 for r in records if r.get("backup"))
        click.echo(f"backups kept on the server: {kept} deploy(s), {human(held)}")


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
        sys.exit(_die(e, False))
    except OSError as e:
        sys.exit(_die(UsageError(f"cannot write {path}: {e.strerror}"), False))
    click.echo(f"wrote {path} (target {name}: {source} → {url})")
    click.echo(f"next: sftpmirror push --dry-run {name}")


@main.command(epilog=EPILOG_DOCTOR)
@click.argument("dest")
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(dest: str, as_json: bool, **kw: Any) -> None:
    """Check the connection, login and destination DEST, step by step, with fixes.

    Exits 0 when no problem is found, 1 otherwise. Takes the same connection
    options as push; the destination gets a probe file, written and removed.
    """
    flags = flags_from(ConnectionFlags, kw)
    _setup(flags.debug)
    try:
        from sftpmirror.doctor import doctor as run_doctor

        coro = run_doctor(parse_remote(with_port(dest, flags)), connect_options(flags))
    except SftpMirrorError as e:
        sys.exit(_die(e, flags.debug))
    report, status = _run(coro, flags.debug)
    if report is None:
        sys.exit(status)
    from sftpmirror.doctor import render

    click.echo(json.dumps(report.as_json(), indent=2) if as_json else render(report))
    sys.exit(0 if report.ok else int(ExitStatus.FAILED_ITEMS))


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
    from sftpmirror.server import ServerConfig, generate_password, serve

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
