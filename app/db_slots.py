"""How the API's requests share the connection pool without ever deadlocking on it (issue 14).

The defect this prevents: a session from a sync generator dependency checks its connection out in the
handler's worker thread and keeps it until the dependency exits, and in between FastAPI needs a second
worker thread to validate the response. Under 64 concurrent reads every one of the thread pool's 40
threads was blocked waiting for a connection, while every one of the pool's 15 connections belonged to
a request waiting for a thread: nothing moved until the pool's 30 s timeout turned them all into 500s.

The rules that make it impossible:
- Requests wait for a *slot* on the event loop (an `anyio.Semaphore`), never in a thread, and a wait
  longer than `db_pool_timeout` answers 503 (`DatabaseBusy`) instead of hanging.
- Slots are the pool's capacity less one connection. The one left over always cycles among code that
  uses the database inside a single worker-thread call and then lets go (predictions, coordinate
  checks): such code never waits for anything while holding a connection, so it always finishes, and
  slot holders that wait for a thread while holding a connection can never hold the whole pool.
- `read` (the hot read routes) opens and closes its session inside one worker-thread call, with its own
  thread limiter sized to the slots, so it neither waits for a thread nor holds a connection across a hop.
- `session` (the generator dependencies) keeps its slot until the session is closed, and closes it on
  that same limiter, never on the shared thread pool (whose threads may all be busy).

And so that a dashboard's polling costs one query, not one per poller: `SharedRead` answers identical
concurrent GETs (same path and query string) with one read, serialized once (app.coalesce). Each caller
still gets a value read after it arrived, never a cached one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response

from app.coalesce import CoalescedReads

P = ParamSpec("P")
T = TypeVar("T")


class DatabaseBusy(Exception):
    """No database slot freed up within `db_pool_timeout`: the API answers 503 with Retry-After."""


class DbSlots:
    """The API process's share of the connection pool, as `capacity` slots awaited on the event loop."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        read_sessions: sessionmaker[Session],
        capacity: int,
        timeout: float,
    ) -> None:
        if capacity < 1:
            raise ValueError("the pool needs at least two connections: raise MUPREDICT_DB_POOL_SIZE")
        self.sessions, self.read_sessions = sessions, read_sessions
        self.capacity, self.timeout = capacity, timeout
        # anyio primitives belong to one event loop; a test may run the app on several, one after another.
        self._primitives: RunVar[tuple[anyio.Semaphore, anyio.CapacityLimiter]] = RunVar(
            f"mupredict_db_slots_{id(self)}"
        )
        self.shared: CoalescedReads[bytes] = CoalescedReads()

    def _loop_primitives(self) -> tuple[anyio.Semaphore, anyio.CapacityLimiter]:
        try:
            return self._primitives.get()
        except LookupError:
            made = (anyio.Semaphore(self.capacity), anyio.CapacityLimiter(self.capacity))
            self._primitives.set(made)
            return made

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[anyio.CapacityLimiter]:
        """Hold one slot; yields the thread limiter its database calls run on (never contended: a slot
        holder runs at most one call at a time, and there are as many threads as slots)."""
        slots, threads = self._loop_primitives()
        try:
            with anyio.fail_after(self.timeout):
                await slots.acquire()
        except TimeoutError:
            raise DatabaseBusy(
                f"all {self.capacity} database slots stayed busy for {self.timeout:g} s; retry shortly "
                "(or raise MUPREDICT_DB_POOL_SIZE / MUPREDICT_DB_MAX_OVERFLOW)"
            ) from None
        try:
            yield threads
        finally:
            slots.release()

    async def read(self, work: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`work(session, ...)` in a worker thread, in a read session opened and closed by that call.

        The result must not need the session any more (build the response model inside `work`)."""

        def in_session() -> T:
            with self.read_sessions() as session:
                return work(session, *args, **kwargs)

        async with self._slot() as threads:
            return await anyio.to_thread.run_sync(in_session, limiter=threads)

    @asynccontextmanager
    async def session(self, *, read: bool) -> AsyncIterator[Session]:
        """A session for a generator dependency: its slot is held until the session is closed."""
        async with self._slot() as threads:
            session = (self.read_sessions if read else self.sessions)()
            try:
                yield session
            finally:
                # Shielded: a client that went away must not leave the connection checked out.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(session.close, limiter=threads)


@dataclass(frozen=True)
class SharedRead:
    """One GET's read, shared with the identical GETs in flight with it (see the module doc)."""

    slots: DbSlots
    key: Hashable  # everything the answer depends on: the path and the query string

    async def json(self, work: Callable[[Session], BaseModel]) -> Response:
        """The JSON of `work(session)`'s model, built in a read session (as `DbSlots.read`) by one call
        for every identical request waiting with this one."""

        def serialized(session: Session) -> bytes:
            return work(session).model_dump_json().encode()

        body = await self.slots.shared.read_async(self.key, lambda: self.slots.read(serialized))
        return Response(body, media_type="application/json")
