"""What the commands over the library do: push, pull, adopt, rollback, history, doctor, serve.

``app.py`` declares the commands and loads this module when one of them runs: it imports the
library (asyncio, the engine, the reporters; ``api`` and with it asyncssh for the commands that
connect), which ``--help`` and ``--version`` never need. Exit statuses are decided here, and an
error's in ``exits.py``, nowhere else.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import click

from sftpmirror.cli import stopping
from sftpmirror.cli.exits import die
from sftpmirror.cli.options import ConnectionFlags, MirrorFlags, flags_from
from sftpmirror.cli.resolve import (
    connect_options,
    destination,
    local_and_remote,
    mirror_options_from,
    with_port,
)
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


def _run(coro: Coroutine[Any, Any, T], debug: bool) -> tuple[T | None, int]:
    """Run the coroutine; map our errors and Ctrl-C to (None, exit status)."""
    try:
        return stopping.run(coro), 0
    except SftpMirrorError as e:
        return None, die(e, debug)
    except KeyboardInterrupt:
        return None, die(Interrupted("interrupted"), debug)
    except Exception as e:  # anything else is still one line and an exit code
        return None, die(InternalError.of(e), debug)


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


def usage_error(argv: list[str], error: click.UsageError) -> None:
    """A usage error click finds in ``push``/``pull`` arguments still gives the ``--json``
    object on stdout, so a CI job can always parse it."""
    flags = argv[1 : argv.index("--")] if "--" in argv else argv[1:]
    lines = "--json-lines" in flags
    if argv and argv[0] in ("push", "pull") and (lines or "--json" in flags):
        wrong = UsageError(error.format_message())
        _echo_summary(summary_object(None, run=Run(argv[0]), error=wrong), lines=lines)


def _echo_summary(obj: dict[str, Any], *, lines: bool) -> None:
    """The summary object on stdout: indented for --json, the last event for --json-lines."""
    if lines:
        click.echo(json.dumps({"event": "summary", **obj}))
    else:
        click.echo(json.dumps(obj, indent=2))


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
        local, remote, target, flags = local_and_remote(ctx, command, args, flags)
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
        error, status = e, die(e, debug)
    except KeyboardInterrupt:
        error = Interrupted("interrupted", hint="a new run picks up where this one stopped")
        status = die(error, debug)
    except Exception as e:  # out of memory, a bug: still one line, the code and the JSON
        error = InternalError.of(e)
        status = die(error, debug)
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


@contextmanager
def _importing() -> Iterator[None]:
    """Around the import of ``sftpmirror.api`` (with asyncssh: loaded by the commands that
    connect, not ``init``): the cyclic collector paused (imports make no garbage; its passes
    over what they made were 20 ms of a push), and what they made set aside in the permanent
    generation."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()


def push(ctx: click.Context, args: tuple[str, ...]) -> None:
    with _importing():
        from sftpmirror import api

    _mirror_command(ctx, "push", lambda lo, re, mo, co, rep: api.push(lo, re, mo, co, rep), args)


def pull(ctx: click.Context, args: tuple[str, ...]) -> None:
    with _importing():
        from sftpmirror import api

    _mirror_command(ctx, "pull", lambda lo, re, mo, co, rep: api.pull(re, lo, mo, co, rep), args)


def adopt(ctx: click.Context, args: tuple[str, ...]) -> None:
    with _importing():
        from sftpmirror import api

    flags = flags_from(MirrorFlags, ctx.params)
    _setup(flags.debug)
    try:
        local, remote, _, flags = local_and_remote(ctx, "push", args, flags)
        reporter, live, _ = _reporters(flags)
        coro = api.adopt(
            local, with_port(remote, flags), mirror_options_from(flags), connect_options(flags),
            reporter,
        )  # fmt: skip
        with live:
            done = stopping.run(coro)
    except SftpMirrorError as e:
        sys.exit(die(e, flags.debug))
    except KeyboardInterrupt:
        sys.exit(die(Interrupted("interrupted"), flags.debug))
    how = f" ({done.hashed} hashed on the server)" if done.hashed else " (by size and mtime)"
    click.echo(
        f"adopted {done.matched} file(s){how}; {done.differ} differ and {done.missing} are "
        "missing on the server: the next push sends them"
    )
    sys.exit(0)


def rollback(ctx: click.Context, where: str | None, to: str | None) -> None:
    with _importing():
        from sftpmirror import api

    flags = flags_from(MirrorFlags, ctx.params)
    _setup(flags.debug)
    error: SftpMirrorError | None = None
    result: Result | None = None
    restored = None
    run = Run("rollback")
    try:
        remote, flags = destination(ctx, where, flags)
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
        error, status = e, die(e, flags.debug)
    except KeyboardInterrupt:
        error = Interrupted("interrupted")
        status = die(error, flags.debug)
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


def history(ctx: click.Context, where: str | None) -> None:
    with _importing():
        from sftpmirror import api

    flags = flags_from(MirrorFlags, ctx.params)
    _setup(flags.debug)
    try:
        remote, flags = destination(ctx, where, flags)
        coro = api.history(remote, mirror_options_from(flags), connect_options(flags))
    except SftpMirrorError as e:
        sys.exit(die(e, flags.debug))
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


def doctor(dest: str, as_json: bool, params: dict[str, Any]) -> None:
    from sftpmirror.doctor import doctor as run_doctor
    from sftpmirror.doctor import render

    flags = flags_from(ConnectionFlags, params)
    _setup(flags.debug)
    try:
        coro = run_doctor(parse_remote(with_port(dest, flags)), connect_options(flags))
    except SftpMirrorError as e:
        sys.exit(die(e, flags.debug))
    report, status = _run(coro, flags.debug)
    if report is None:
        sys.exit(status)
    click.echo(json.dumps(report.as_json(), indent=2) if as_json else render(report))
    sys.exit(0 if report.ok else int(ExitStatus.FAILED_ITEMS))


def serve(
    root: Path,
    host: str,
    port: int,
    user: str,
    max_auth_tries: int,
    state_dir: Path | None,
    authorized_keys: Path | None,
    ready_file: Path | None,
) -> None:
    from sftpmirror.server import ServerConfig, generate_password
    from sftpmirror.server import serve as serving

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
        async with serving(config) as info:
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
