"""Bounded concurrency: a pool of workers over a shared iterator, and a TaskGroup whose failure
is the first real error rather than an ExceptionGroup (so the CLI can map it to an exit code)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TypeVar

T = TypeVar("T")


@asynccontextmanager
async def task_group() -> AsyncIterator[asyncio.TaskGroup]:
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as errors:
        raise _first(errors) from None


def _first(errors: BaseExceptionGroup[BaseException]) -> BaseException:
    first = errors.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


async def run_pool(items: Iterable[T], work: Callable[[T], Awaitable[None]], size: int) -> None:
    """Run ``work`` on every item, at most ``size`` at a time; the first error stops the rest."""
    shared = iter(items)

    async def worker() -> None:
        for item in shared:
            await work(item)

    async with task_group() as group:
        for _ in range(max(1, size)):
            group.create_task(worker())
