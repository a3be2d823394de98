"""CoalescedReads: one query answers every concurrent reader of a key, and no reader gets a stale value."""

from __future__ import annotations

import asyncio
import itertools
import threading

import pytest

from app.coalesce import CoalescedReads


class Counter:
    """A query whose value is the number of calls so far; each call can be held open by a gate."""

    def __init__(self) -> None:
        self.calls = itertools.count(1)
        self.started = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self) -> int:
        value = next(self.calls)
        self.started.set()
        assert self.gate.wait(10)
        return value


def test_concurrent_readers_share_one_query() -> None:
    query = Counter()

    async def main() -> list[int]:
        reads: CoalescedReads[int] = CoalescedReads()
        return await asyncio.gather(*(reads.read("arch", query) for _ in range(50)))

    values = asyncio.run(main())
    assert values == [1] * 50  # all fifty arrived before the first query started: one batch
    assert next(query.calls) == 2


def test_a_reader_arriving_mid_query_waits_for_a_fresh_one() -> None:
    query = Counter()
    query.gate.clear()

    async def main() -> tuple[int, list[int]]:
        reads: CoalescedReads[int] = CoalescedReads()
        first = asyncio.ensure_future(reads.read("arch", query))
        await asyncio.to_thread(query.started.wait, 10)  # query 1 is now in flight
        late = [asyncio.ensure_future(reads.read("arch", query)) for _ in range(20)]
        await asyncio.sleep(0.05)
        query.gate.set()
        return await first, list(await asyncio.gather(*late))

    first, late = asyncio.run(main())
    # Query 1 began before the late readers arrived, so it may not answer them; query 2, which began
    # after, answers all twenty at once.
    assert first == 1 and late == [2] * 20
    assert next(query.calls) == 3


def test_keys_do_not_share_and_errors_reach_their_batch_only() -> None:
    calls: list[str] = []

    def query_for(key: str) -> int:
        calls.append(key)
        if key == "broken" and calls.count("broken") == 1:
            raise RuntimeError("database went away")
        return len(key)

    async def main() -> tuple[list[int | BaseException], int]:
        reads: CoalescedReads[int] = CoalescedReads()
        outcomes = await asyncio.gather(
            reads.read("a", lambda: query_for("a")),
            reads.read("bbb", lambda: query_for("bbb")),
            reads.read("broken", lambda: query_for("broken")),
            reads.read("broken", lambda: query_for("broken")),
            return_exceptions=True,
        )
        retried = await reads.read("broken", lambda: query_for("broken"))  # the next batch queries again
        return list(outcomes), retried

    outcomes, retried = asyncio.run(main())
    assert outcomes[:2] == [1, 3]
    assert all(isinstance(o, RuntimeError) and "went away" in str(o) for o in outcomes[2:])
    assert retried == 6 and sorted(calls) == ["a", "bbb", "broken", "broken"]


def test_a_cancelled_reader_does_not_cancel_the_others() -> None:
    query = Counter()
    query.gate.clear()

    async def main() -> int:
        reads: CoalescedReads[int] = CoalescedReads()
        leaving = asyncio.ensure_future(reads.read("arch", query))
        staying = asyncio.ensure_future(reads.read("arch", query))
        await asyncio.to_thread(query.started.wait, 10)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        query.gate.set()
        return await staying

    assert asyncio.run(main()) == 1
