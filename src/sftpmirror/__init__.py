"""sftpmirror: mirror a directory to (and from) an SFTP-only, chrooted server.

import sftpmirror
result = await sftpmirror.push("public", "sftp://user01@example.org/public_html",
                               connect_options=sftpmirror.ConnectOptions(
                                   password=sftpmirror.Secret(os.environ["PW"])))
"""

from .api import MirrorOptions, Result, mirror, pull, push
from .auth import ConnectOptions, Secret
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
from .model import Action, Entry, Failure, Kind, Listing, Op, Plan, Report
from .plan import PlanOptions, plan
from .url import RemoteSpec, parse_remote

__version__ = "0.1.0"

__all__ = [
    "Action",
    "AuthError",
    "ConnectError",
    "ConnectOptions",
    "Entry",
    "ExitStatus",
    "Failure",
    "HostKeyError",
    "Kind",
    "Listing",
    "MirrorOptions",
    "Op",
    "Plan",
    "PlanOptions",
    "RemoteError",
    "RemoteSpec",
    "Report",
    "Result",
    "SafetyError",
    "Secret",
    "SftpMirrorError",
    "UsageError",
    "__version__",
    "mirror",
    "parse_remote",
    "plan",
    "pull",
    "push",
]
