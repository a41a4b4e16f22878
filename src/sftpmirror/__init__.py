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
"""

from .api import MirrorOptions, Result, mirror, pull, pull_sync, push, push_sync
from .auth import ConnectOptions, Secret
from .chmod import ChmodRules, parse_chmod
from .config import Config, Target, find_config, load_config
from .errors import (
    AuthError,
    ConnectError,
    ExitStatus,
    HostKeyError,
    RemoteError,
    SafetyError,
    SftpMirrorError,
    UsageError,
)
from .guards import DeleteLimits
from .model import Action, Entry, Failure, Kind, Listing, Op, Plan, Report
from .plan import PlanOptions, plan
from .progress import JsonLinesReporter, NullReporter, Reporter, TextReporter
from .url import RemoteSpec, parse_remote

__version__ = "0.1.0"

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
