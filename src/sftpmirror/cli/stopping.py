"""A run that stops when asked, within seconds, on any link (issue 15: F1, F10, F11).

SIGINT and SIGTERM are handled by the event loop, whatever dispositions were inherited (a
script's background job starts with SIGINT ignored). The first one cancels the run: transfers
stop, temporaries are removed and nothing is deleted, as on any interruption. Cleaning up
waits for the requests in flight, which on a slow link can take minutes (an 8 MiB chunk at
1 Mbit/s is a minute): after ``GRACE`` seconds the connections are dropped, so the requests
fail at once and the run ends; the temporaries the server still holds are swept by the next
run (the journal names them). A second signal drops them at once.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
GRACE = 3.0  # seconds a stopping run may spend finishing its requests before they are dropped
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _abort() -> None:
    from sftpmirror.transport.connect import abort_all  # loaded already by any connection

    abort_all()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``; KeyboardInterrupt when a signal stopped it."""
    if threading.current_thread() is not threading.main_thread():
        return asyncio.run(coro)
    stopped = False

    async def main() -> T:
        nonlocal stopped
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop() -> None:
            nonlocal stopped
            if stopped:
                _abort()
                return
            stopped = True
            task.cancel()
            loop.call_later(GRACE, _abort)

        for sig in SIGNALS:
            loop.add_signal_handler(sig, stop)
        try:
            return await coro
        finally:
            for sig in SIGNALS:
                loop.remove_signal_handler(sig)

    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        if stopped:
            raise KeyboardInterrupt from None
        raise
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
