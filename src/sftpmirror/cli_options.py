"""The flags push and pull share, and their translation into the library's option records.

A named target from ``sftpmirror.toml`` fills in every flag not given on the command line (its
keys are the flags' names): flags win over the target, the target over the defaults. The
password flags count as one: any of them on the command line sets aside the target's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from .api import DEFAULT_JOBS, DEFAULT_RECONNECTS, MirrorOptions
from .auth import (
    DEFAULT_MAX_KEYS,
    ConnectOptions,
    Secret,
    parse_auth_methods,
    password_from_command,
    password_from_env,
    read_password_file,
)
from .chmod import DEFAULT_CHMOD, DEFAULT_RULES, ChmodRules, parse_chmod
from .config import PASSWORD_KEYS, PERMS_KEYS, Target
from .errors import UsageError
from .guards import DeleteLimits
from .manifest import DEFAULT_NAME as DEFAULT_MANIFEST
from .plan import PAGE_SUFFIXES

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
            help="Delete destination files not in the source.",
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
    ])  # fmt: skip


def apply_target(ctx: click.Context, target: Target, kw: dict[str, Any]) -> None:
    """Fill ``kw`` with the target's values wherever the command line did not set the flag."""

    def given(param: str) -> bool:
        return ctx.get_parameter_source(param) not in (ParameterSource.DEFAULT, None)

    password_given = any(given(k) for k in PASSWORD_KEYS)
    perms_given = any(given(k) for k in PERMS_KEYS)
    for param, value in target.values.items():
        if (param in PASSWORD_KEYS and password_given) or (param in PERMS_KEYS and perms_given):
            continue
        if param == "excludes":
            kw["excludes"] = (*value, *kw["excludes"])
        elif param == "manifest" and value is False:
            if not given("manifest"):
                kw["no_manifest"] = True
        elif param in kw and not given(param):
            kw[param] = value


def password(kw: dict[str, Any]) -> Secret | None:
    """From the one password flag given, else $SFTPMIRROR_PASSWORD, else $SSHPASS, else None
    (the login then prompts, on a terminal)."""
    chosen = [k for k in PASSWORD_KEYS if kw.get(k) is not None]
    if len(chosen) > 1:
        flags = " and ".join("--" + k.replace("_", "-") for k in chosen)
        raise UsageError(f"give one password source, not {flags}")
    if kw.get("password_file") is not None:
        return read_password_file(kw["password_file"])
    if kw.get("password_command") is not None:
        return password_from_command(kw["password_command"])
    return password_from_env(name=kw.get("password_env"))


def permission_rules(kw: dict[str, Any]) -> ChmodRules | None:
    """--chmod's rules, none for --perms (the source's bits), else the default ones."""
    if kw["no_perms"] and (kw["chmod"] is not None or kw["perms"]):
        raise UsageError("--no-perms sets no permissions: it cannot go with --chmod or --perms")
    if kw["chmod"] is not None:
        return parse_chmod(kw["chmod"])
    return None if kw["perms"] else DEFAULT_RULES


def connect_options(kw: dict[str, Any]) -> ConnectOptions:
    methods = kw["auth_methods"]
    return ConnectOptions(
        password=password(kw),
        prompt_password=True,
        identities=tuple(kw["identities"]),
        auth=parse_auth_methods(methods) if methods is not None else None,
        max_keys=kw["max_keys"],
        known_hosts=kw["known_hosts"],
        accept_new_host_key=kw["accept_new_host_key"],
        ssh_config=kw["ssh_config"],
        timeout=kw["timeout"],
    )


def mirror_options_from(kw: dict[str, Any]) -> MirrorOptions:
    return MirrorOptions(
        delete=kw["delete"],
        dry_run=kw["dry_run"],
        excludes=tuple(kw["excludes"]),
        jobs=kw["jobs"],
        reconnects=kw["reconnects"],
        perms=not kw["no_perms"],
        chmod=permission_rules(kw),
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
