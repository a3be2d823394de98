"""Concurrent requests for the same fresh read share one query instead of one each.

A read joins the batch that will start next: the requests that arrive in one turn of the event loop share
a query, and while it is in flight every request that arrives waits for the following one, which starts
when the first returns and answers them all. Each caller therefore sees a value read after it arrived
(never a stale one), and a key has at most one query in flight however many requests ask. It is the
request-coalescing ("group commit") pattern, here for `results_version`, which every prediction must read
and which only changes when a run finishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")


class CoalescedReads(Generic[T]):
    """Fresh reads of a value per key, at most one query in flight per key (see the module doc)."""

    def __init__(self) -> None:
        # Per key: the batch that starts when the key's query in flight returns, and its query.
        self._next: dict[Hashable, tuple[asyncio.Future[T], Callable[[], Awaitable[T]]]] = {}
        # Per key: the query in flight (held here too: the event loop keeps only weak references).
        self._running: dict[Hashable, asyncio.Future[T]] = {}

    async def read(self, key: Hashable, query: Callable[[], T]) -> T:
        """The value of a `query()` call that began after this one; `query` runs in a worker thread.

        Callers that share a key must pass interchangeable queries: one call answers the whole batch.
        """
        return await self.read_async(key, lambda: run_in_threadpool(query))

    async def read_async(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        """As `read`, for a query that is itself a coroutine (one that picks its own thread)."""
        waiting = self._next.get(key)
        if waiting is None:
            loop = asyncio.get_running_loop()
            waiting = self._next[key] = (loop.create_future(), fetch)
            if key not in self._running:
                # Start on the loop's next turn, so the requests that are ready in this one join too.
                loop.call_soon(self._start, key)
        # Shielded: a caller cancelled because its client went away must not cancel the others' batch.
        return await asyncio.shield(waiting[0])

    def _start(self, key: Hashable) -> None:
        batch, query = self._next.pop(key)

        def finish(done: asyncio.Future[T]) -> None:
            del self._running[key]
            if done.cancelled():
                batch.cancel()
            elif (error := done.exception()) is not None:
                batch.set_exception(error)
            else:
                batch.set_result(done.result())
            if key in self._next:  # those who arrived during this query: their batch starts now
                asyncio.get_running_loop().call_soon(self._start, key)

        running = self._running[key] = asyncio.ensure_future(query())
        running.add_done_callback(finish)
