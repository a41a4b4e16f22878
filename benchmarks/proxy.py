"""A TCP proxy on 127.0.0.1 that adds latency, not bandwidth limits (there is no netem here).

Every chunk read from one side is delivered to the other side ``rtt/2`` after
it arrived, in order: each direction has a queue of ``(due time, bytes)`` and a
writer that sleeps until the head of the queue is due.  Reading never waits
for writing, so the delay does not throttle throughput (beyond what TCP's own
windows do over a link with that round-trip time).

Run on its own, it prints the port it listens on and runs until interrupted::

    python -m benchmarks.proxy --target-port 2222 --rtt-ms 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

__all__ = ["LatencyProxy", "main"]

HOST = "127.0.0.1"  # the proxy never listens on nor connects to anything else
_CHUNK = 256 * 1024
_QUEUE_CHUNKS = 4096


class LatencyProxy:
    """Forward ``HOST:listen_port`` to ``HOST:target_port`` with a one-way delay each way."""

    def __init__(self, target_port: int, rtt_ms: float, listen_port: int = 0) -> None:
        if rtt_ms < 0:
            raise ValueError("rtt_ms must be >= 0")
        self.target_port = target_port
        self.delay = rtt_ms / 2000.0
        self.listen_port = listen_port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        """Start listening; return the port."""
        self._server = await asyncio.start_server(self._accept, HOST, self.listen_port)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for writer in list(self._writers):  # open connections end as if reset
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(client_w)
        try:
            try:
                server_r, server_w = await asyncio.open_connection(HOST, self.target_port)
            except OSError:
                client_w.close()
                return
            self._writers.add(server_w)
            try:
                await asyncio.gather(
                    self._pump(client_r, server_w),
                    self._pump(server_r, client_w),
                )
            finally:
                for writer in (client_w, server_w):
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
                    self._writers.discard(writer)
        finally:
            self._writers.discard(client_w)
            if task is not None:
                self._tasks.discard(task)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Copy *src* to *dst*, delivering each chunk ``delay`` seconds after it was read."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUE_CHUNKS)

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:  # EOF: half-close, as the sender did
                    if dst.can_write_eof():
                        dst.write_eof()
                    return
                dst.write(data)
                await dst.drain()

        writer = asyncio.create_task(deliver())
        try:
            while True:
                try:
                    data = await src.read(_CHUNK)
                except OSError:
                    data = b""
                if writer.done():  # the other side is gone
                    break
                await queue.put((loop.time() + self.delay, data))
                if not data:
                    break
            await writer
        except OSError:
            pass
        finally:
            if not writer.done():
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await writer


async def _serve(target_port: int, rtt_ms: float, listen_port: int) -> None:
    proxy = LatencyProxy(target_port, rtt_ms, listen_port)
    port = await proxy.start()
    print(port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await proxy.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.proxy",
        description=f"Latency-injecting TCP proxy on {HOST}; prints its port on stdout.",
    )
    parser.add_argument("--target-port", type=int, required=True, help=f"port on {HOST}")
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="added round trip (ms)")
    parser.add_argument("--listen-port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.target_port, args.rtt_ms, args.listen_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
