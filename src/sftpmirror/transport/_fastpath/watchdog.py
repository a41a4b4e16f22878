"""A session that stops answering is noticed (issue 15, F7): a server blocked on one request (a
FIFO opened for reading, a READDIR or READ it never answers) while SSH keepalives still get
their replies hung a run for good.

The watchdog hears every SFTP answer (asyncssh calls ``log_received_packet`` on the session's
handler for each one; this object's copy is wrapped) and looks at the requests waiting
(``SFTPClientHandler._requests``). When requests wait and no answer at all has come for
``timeout`` seconds, the connection is dropped: every request fails at once, and the run ends
(exit 3, "the server stopped answering"), or reconnects. Time with nothing waiting does not
count, and neither does a slow link: on one, answers keep coming, one per request. asyncssh's
privates are named in ``surface.py`` (feature ``watchdog``); when they changed, there is no
watchdog, and a stalled server is ended by the keepalives only if the SSH layer stalls too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

TICK = 1.0  # seconds between looks


class Watchdog:
    def __init__(self, sftp: Any, conn: Any, timeout: float) -> None:
        self.timeout = timeout
        self.stalled = False
        handler = sftp._handler
        self._requests: dict[int, object] = handler._requests
        self._conn = conn
        self._last = time.monotonic()
        heard = handler.log_received_packet

        def log_received_packet(*args: Any) -> None:
            self._last = time.monotonic()
            heard(*args)

        setattr(handler, "log_received_packet", log_received_packet)  # noqa: B010 - this object only
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            if not self._requests:
                self._last = now  # nothing waited: silence is not a stall
            elif now - self._last > self.timeout:
                self.stalled = True
                self._conn.abort()
                return

    def stop(self) -> None:
        self._task.cancel()
