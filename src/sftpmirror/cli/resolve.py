"""From what the command line says to what the library takes: the arguments and a target
resolved into the local directory and the remote location, the flags into ``MirrorOptions`` and
``ConnectOptions``.

A named target from ``sftpmirror.toml`` fills in every flag not given on the command line (its
keys are the flags' names): flags win over the target, the target over the defaults. The
password flags count as one: any of them on the command line sets aside the target's. A target
gives a new flags record, never a mutated dict.
"""

from __future__ import annotations

import dataclasses
from dataclasses import fields
from typing import Any

import click
from click.core import ParameterSource

from sftpmirror.cli.options import ConnectionFlags, MirrorFlags
from sftpmirror.config import (
    CONFIG_NAME,
    PASSWORD_KEYS,
    PERMS_KEYS,
    Config,
    Target,
    find_config,
    load_config,
)
from sftpmirror.engine.chmod import DEFAULT_RULES, ChmodRules, parse_chmod
from sftpmirror.engine.guards import DeleteLimits
from sftpmirror.engine.mirror import MirrorOptions
from sftpmirror.engine.plan import DEFAULT_PROTECT
from sftpmirror.errors import UsageError
from sftpmirror.transport.auth import (
    ConnectOptions,
    Secret,
    parse_auth_methods,
    password_from_command,
    password_from_env,
    read_password_file,
)
from sftpmirror.url import is_remote, parse_remote


def read_config(flags: MirrorFlags) -> Config:
    """The sftpmirror.toml named by --config, else the nearest one up from here."""
    path = flags.config or find_config()
    if path is None:
        raise UsageError(
            f"no {CONFIG_NAME} here or in a parent directory",
            hint="give LOCAL_DIR and DEST, or write one with: sftpmirror init",
        )
    return load_config(path)


def local_and_remote(
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
    target = read_config(flags).target(args[0] if args else None)
    flags = apply_target(ctx, target, flags, command)
    local = args[1] if len(args) == 2 else str(target.source)
    return local, target.url, target.name, flags


def destination(
    ctx: click.Context, where: str | None, flags: MirrorFlags
) -> tuple[str, MirrorFlags]:
    """The remote location named by a target (or given), with the target's flags."""
    if where is not None and is_remote(where):
        return with_port(where, flags), flags
    target = read_config(flags).target(where)
    flags = apply_target(ctx, target, flags)
    return with_port(target.url, flags), flags


def apply_target(
    ctx: click.Context, target: Target, flags: MirrorFlags, command: str = "push"
) -> MirrorFlags:
    """The flags with the target's values wherever the command line did not set the flag. A
    target's ``delete`` is a push's: a pull deletes local files only when told so on the
    command line."""

    def given(param: str) -> bool:
        return ctx.get_parameter_source(param) not in (ParameterSource.DEFAULT, None)

    names = {f.name for f in fields(MirrorFlags)}
    password_given = any(given(k) for k in PASSWORD_KEYS)
    perms_given = any(given(k) for k in PERMS_KEYS)
    changes: dict[str, Any] = {}
    for param, value in target.values.items():
        if (param in PASSWORD_KEYS and password_given) or (param in PERMS_KEYS and perms_given):
            continue
        if command == "pull" and param in ("delete", "delete_foreign", "release"):
            continue
        if param == "excludes":
            changes["excludes"] = (*value, *flags.excludes)
        elif param == "manifest" and value is False:
            if not given("manifest"):
                changes["no_manifest"] = True
        elif param in names and not given(param):
            changes[param] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(flags, **changes)


def password(flags: ConnectionFlags) -> Secret | None:
    """From the one password flag given, else $SFTPMIRROR_PASSWORD, else $SSHPASS, else None
    (the login then prompts, on a terminal)."""
    chosen = [k for k in PASSWORD_KEYS if getattr(flags, k) is not None]
    if len(chosen) > 1:
        names = " and ".join("--" + k.replace("_", "-") for k in chosen)
        raise UsageError(f"give one password source, not {names}")
    if flags.password_file is not None:
        return read_password_file(flags.password_file)
    if flags.password_command is not None:
        return password_from_command(flags.password_command)
    return password_from_env(name=flags.password_env)


def permission_rules(flags: MirrorFlags) -> ChmodRules | None:
    """--chmod's rules, none for --perms (the source's bits), else the default ones."""
    if flags.no_perms and (flags.chmod is not None or flags.perms):
        raise UsageError("--no-perms sets no permissions: it cannot go with --chmod or --perms")
    if flags.chmod is not None:
        return parse_chmod(flags.chmod)
    return None if flags.perms else DEFAULT_RULES


def connect_options(flags: ConnectionFlags) -> ConnectOptions:
    methods = flags.auth_methods
    return ConnectOptions(
        password=password(flags),
        prompt_password=True,
        identities=tuple(flags.identities),
        auth=parse_auth_methods(methods) if methods is not None else None,
        max_keys=flags.max_keys,
        known_hosts=flags.known_hosts,
        accept_new_host_key=flags.accept_new_host_key,
        ssh_config=flags.ssh_config,
        timeout=flags.timeout,
    )


def with_port(remote: str, flags: ConnectionFlags) -> str:
    """The remote location, with ``--port`` when given (it wins over the URL's)."""
    if flags.port is None:
        return remote
    return str(dataclasses.replace(parse_remote(remote), port=flags.port))


def mirror_options_from(flags: MirrorFlags) -> MirrorOptions:
    return MirrorOptions(
        delete=flags.delete,
        dry_run=flags.dry_run,
        excludes=tuple(flags.excludes),
        jobs=flags.jobs,
        reconnects=flags.reconnects,
        lock_wait=flags.lock_wait,
        break_lock=flags.break_lock,
        delete_foreign=flags.delete_foreign,
        keep=flags.keep,
        refuse_older=flags.refuse_older,
        release=None if flags.release == "inplace" else flags.release,
        protect=(() if flags.no_protect else DEFAULT_PROTECT) + tuple(flags.protect),
        perms=not flags.no_perms,
        chmod=permission_rules(flags),
        manifest=None if flags.no_manifest else flags.manifest,
        local_manifest=flags.local_manifest,
        verify=flags.verify,
        page_suffixes=tuple(x.strip().lower() for x in flags.pages_last.split(",") if x.strip()),
        limits=DeleteLimits(
            allow_empty_source=flags.allow_empty_source,
            max_delete=flags.max_delete,
            max_delete_percent=flags.max_delete_percent,
        ),
    )
