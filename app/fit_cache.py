"""The per-process memo of each architecture's current fit and of the answers made from it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

from sqlalchemy.orm import Session

import predictor
from app.coalesce import CoalescedReads
from app.fits import DEFAULT_LAW, CurrentFit, Version, current_fit, results_version

K = TypeVar("K")
V = TypeVar("V")


class FitCache:
    """Per-process memo of each architecture's current fit and of the predictions made from it.

    A request costs one aggregate query (`results_version`) while nothing has changed; a finished run
    changes the version, and the next request reads (or computes and stores) the new fit. Bounded LRU.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._fits: OrderedDict[tuple[int, str, Version], CurrentFit] = OrderedDict()
        self._predictions: OrderedDict[tuple[int, float, float, str, int, str], predictor.Prediction] = (
            OrderedDict()
        )
        self._responses: OrderedDict[Hashable, bytes] = OrderedDict()
        self._flights: dict[tuple[int, str, Version], threading.Lock] = {}
        self._lock = threading.Lock()
        # Each architecture's results_version, read once for all the requests that ask at the same time.
        self.versions: CoalescedReads[Version] = CoalescedReads()

    def current(
        self, session: Session, architecture_id: int, min_widths: int, law: str = DEFAULT_LAW
    ) -> CurrentFit:
        key = (architecture_id, law, results_version(session, architecture_id))
        with self._lock:
            hit = self._fits.get(key)
            flight = None if hit is not None else self._flights.setdefault(key, threading.Lock())
        if hit is not None:
            return hit
        # Single flight: when many requests miss at once (a run just finished), one thread loads or
        # computes the fit and the others wait for it, instead of each fitting the same points.
        assert flight is not None
        if not flight.acquire(blocking=False):
            # Another thread is loading this fit. Wait without holding a pooled connection: when every
            # connection is held by a waiter, the loader cannot get one to store the fit, and all of them
            # stall until the pool's checkout timeout. The caller's session reconnects on its next use.
            session.rollback()
            flight.acquire()
        try:
            with self._lock:
                hit = self._fits.get(key)
            if hit is not None:
                return hit
            try:
                fresh = current_fit(session, architecture_id, min_widths, law)
            finally:
                with self._lock:
                    self._flights.pop(key, None)
            with self._lock:
                _remember(self._fits, key, fresh, self.max_entries)
        finally:
            flight.release()
        return fresh

    def predict(
        self,
        current: CurrentFit,
        n_params: float,
        level: float,
        interval: str = "expected",
        seeds: int = 1,
        method: str = predictor.DEFAULT_METHOD,
    ) -> predictor.Prediction:
        key = (current.fit_id, float(n_params), float(level), interval, int(seeds), method)
        with self._lock:
            hit = self._predictions.get(key)
        if hit is not None:
            return hit
        prediction = current.result.predict(
            n_params, level=level, interval=interval, seeds=seeds, method=method
        )
        with self._lock:
            _remember(self._predictions, key, prediction, self.max_entries)
        return prediction

    def memoised_response(self, key: Hashable) -> bytes | None:
        with self._lock:
            return self._responses.get(key)

    def response(self, key: Hashable, build: Callable[[], bytes]) -> bytes:
        """A serialized response, memoised under a key that includes `results_version`.

        The hot read (the same prediction asked again) then costs the version query and a lookup;
        errors are raised by `build` and never memoised.
        """
        hit = self.memoised_response(key)
        if hit is not None:
            return hit
        body = build()
        with self._lock:
            _remember(self._responses, key, body, self.max_entries)
        return body


def _remember(memo: OrderedDict[K, V], key: K, value: V, max_entries: int) -> None:
    memo[key] = value
    memo.move_to_end(key)
    while len(memo) > max_entries:
        memo.popitem(last=False)
