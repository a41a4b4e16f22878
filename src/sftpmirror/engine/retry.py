"""Reconnect as a wrapper, not sprinkled through the code (restic's backend retry, borgstore's
``with_reconnect``): a run that loses its connection after the login is made again, up to
``reconnects`` times with a doubling wait, and starts over: scan, compare, plan.

What the lost pass finished is in place and is not done again (each file is renamed into place
whole, and the new plan sees it); its counts are carried into the Report. Then ConnectionLost
(exit 3). A reconnection that fails to log in, or meets another host key, stops at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sftpmirror.engine.model import Report
from sftpmirror.engine.reporter import Reporter
from sftpmirror.errors import ConnectError, ConnectionLost, HostKeyError, SftpMirrorError

FIRST_WAIT = 2.0  # seconds before the first reconnection; doubled each time

T = TypeVar("T")


async def with_reconnects(
    attempt: Callable[[], Awaitable[T]],
    report_of: Callable[[T], Report],
    *,
    reconnects: int,
    reporter: Reporter,
) -> T:
    """``attempt()`` (connect and run), made again after a lost connection."""
    earlier = Report()
    lost = 0
    wait = FIRST_WAIT
    while True:
        reporter.phase("connecting" if not lost else "reconnecting")
        try:
            result = await attempt()
        except ConnectionLost as e:
            if e.done is not None:
                earlier.carry(e.done)
            why = e.message
        except ConnectError as e:
            if not lost or isinstance(e, HostKeyError):
                _count_earlier(e, earlier)
                raise
            why = e.message  # the server is not back yet
        except SftpMirrorError as e:
            _count_earlier(e, earlier)
            raise
        else:
            report = report_of(result)
            report.carry(earlier)
            report.reconnects = lost
            return result
        if lost >= reconnects:
            tries = f" after {lost} reconnection(s)" if lost else ""
            raise ConnectionLost(f"{why}{tries}", done=earlier)
        lost += 1
        reporter.warning(f"{why}; reconnecting in {wait:g}s ({lost} of {reconnects})")
        await asyncio.sleep(wait)
        wait *= 2


def _count_earlier(error: SftpMirrorError, earlier: Report) -> None:
    """Make the error's ``done`` count what the earlier attempts did too."""
    if earlier.done or earlier.failures:
        done = error.done or Report()
        done.carry(earlier)
        error.done = done
