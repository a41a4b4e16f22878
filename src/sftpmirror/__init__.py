"""sftpmirror: mirror a directory to (and from) an SFTP-only, chrooted server.

    import os, sftpmirror
    result = await sftpmirror.push(
        "public",
        "sftp://user01@example.org/public_html",
        sftpmirror.MirrorOptions(delete=True),
        sftpmirror.ConnectOptions(password=sftpmirror.Secret(os.environ["PW"])),
    )
    print(result.summary())  # the line the CLI prints; result.as_json() is its --json

``push_sync`` and ``pull_sync`` do the same without an event loop. A ``Reporter``
(``TextReporter``, ``JsonLinesReporter``, or your own) hears of each phase and action.

Names are loaded when first used, so ``import sftpmirror.engine`` (or ``sftpmirror --version``)
does not load asyncssh.
"""

import importlib as _importlib
import typing as _typing

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "MirrorOptions": "sftpmirror.engine.mirror",
    "Result": "sftpmirror.result",
    "mirror": "sftpmirror.api",
    "pull": "sftpmirror.api",
    "pull_sync": "sftpmirror.api",
    "push": "sftpmirror.api",
    "push_sync": "sftpmirror.api",
    "ConnectOptions": "sftpmirror.transport.auth",
    "Secret": "sftpmirror.transport.auth",
    "ChmodRules": "sftpmirror.engine.chmod",
    "parse_chmod": "sftpmirror.engine.chmod",
    "Config": "sftpmirror.config",
    "Target": "sftpmirror.config",
    "find_config": "sftpmirror.config",
    "load_config": "sftpmirror.config",
    "AuthError": "sftpmirror.errors",
    "ConnectError": "sftpmirror.errors",
    "ExitStatus": "sftpmirror.errors",
    "HostKeyError": "sftpmirror.errors",
    "RemoteError": "sftpmirror.errors",
    "SafetyError": "sftpmirror.errors",
    "SftpMirrorError": "sftpmirror.errors",
    "UsageError": "sftpmirror.errors",
    "DeleteLimits": "sftpmirror.engine.guards",
    "Action": "sftpmirror.engine.model",
    "Entry": "sftpmirror.engine.model",
    "Failure": "sftpmirror.engine.model",
    "Kind": "sftpmirror.engine.model",
    "Listing": "sftpmirror.engine.model",
    "Op": "sftpmirror.engine.model",
    "Plan": "sftpmirror.engine.model",
    "Report": "sftpmirror.engine.model",
    "PlanOptions": "sftpmirror.engine.plan",
    "plan": "sftpmirror.engine.plan",
    "JsonLinesReporter": "sftpmirror.reporting.text",
    "NullReporter": "sftpmirror.reporting.text",
    "Reporter": "sftpmirror.reporting.text",
    "TextReporter": "sftpmirror.reporting.text",
    "RemoteSpec": "sftpmirror.url",
    "parse_remote": "sftpmirror.url",
}

if _typing.TYPE_CHECKING:
    from sftpmirror.api import mirror, pull, pull_sync, push, push_sync
    from sftpmirror.config import Config, Target, find_config, load_config
    from sftpmirror.engine.chmod import ChmodRules, parse_chmod
    from sftpmirror.engine.guards import DeleteLimits
    from sftpmirror.engine.mirror import MirrorOptions
    from sftpmirror.engine.model import Action, Entry, Failure, Kind, Listing, Op, Plan, Report
    from sftpmirror.engine.plan import PlanOptions, plan
    from sftpmirror.errors import (
        AuthError,
        ConnectError,
        ExitStatus,
        HostKeyError,
        RemoteError,
        SafetyError,
        SftpMirrorError,
        UsageError,
    )
    from sftpmirror.reporting.text import JsonLinesReporter, NullReporter, Reporter, TextReporter
    from sftpmirror.result import Result
    from sftpmirror.transport.auth import ConnectOptions, Secret
    from sftpmirror.url import RemoteSpec, parse_remote


def __getattr__(name: str) -> _typing.Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sftpmirror' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "Action",
    "AuthError",
    "ChmodRules",
    "Config",
    "ConnectError",
    "ConnectOptions",
    "DeleteLimits",
    "Entry",
    "ExitStatus",
    "Failure",
    "HostKeyError",
    "JsonLinesReporter",
    "Kind",
    "Listing",
    "MirrorOptions",
    "NullReporter",
    "Op",
    "Plan",
    "PlanOptions",
    "RemoteError",
    "RemoteSpec",
    "Report",
    "Reporter",
    "Result",
    "SafetyError",
    "Secret",
    "SftpMirrorError",
    "Target",
    "TextReporter",
    "UsageError",
    "__version__",
    "find_config",
    "load_config",
    "mirror",
    "parse_chmod",
    "parse_remote",
    "plan",
    "pull",
    "pull_sync",
    "push",
    "push_sync",
]
