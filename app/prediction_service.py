"""Predictions and comparisons, answered by one object per API process: `PredictionService`.

One key identifies an architecture's current fit: `FitKey` = (architecture id, law, results version),
where the version (`results_version`) changes whenever a run of the architecture succeeds, a tuning
changes or a sweep is created. The memo of current fits, the single flight that loads one, the memo of
serialized answers and that of `auto`'s choice for a comparison are all keyed by it, so nothing here can
outlive the data it was made from. The stored fits themselves (keyed by the hash of their points) are
app/fits.py's; the answers' content is app/answers.py's.

A repeated prediction costs one aggregate query, shared by every concurrent request for the same
architecture (app.coalesce), and a dictionary lookup; only a miss goes to a thread to build the answer.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any, TypeVar

from fastapi import HTTPException, status
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app import answers
from app.coalesce import CoalescedReads
from app.fits import (
    AUTO_LAW,
    AUTO_SLICE,
    DEFAULT_LAW,
    GRID_LAW,
    SLICE_LAW,
    CurrentFit,
    FitFailed,
    NoScalingTrend,
    NotEnoughRuns,
    current_fit,
    slice_unavailable,
)
from app.models import Architecture, RunStatus
from app.schemas import (
    ComparePublic,
    CompareRequest,
    PredictionBatchItem,
    PredictionBatchPublic,
    PredictionBatchRequest,
    PredictionPublic,
    PredictionRequest,
)
from app.settings import Settings

K = TypeVar("K")
V = TypeVar("V")
Version = tuple[int, str, str, object]
FitKey = tuple[int, str, Version]  # (architecture id, law, results version): "the current fit"


# Run.status is stored as the member's name (a non-native enum), so the literal is the enum's own.
_VERSION_SQL = (
    "SELECT count(id), max(finished_at), "
    "(SELECT max(updated_at) FROM tunings WHERE architecture_id = {p}), "
    "(SELECT max(id) FROM sweeps WHERE architecture_id = {p}) "
    f"FROM runs WHERE architecture_id = {{p}} AND status = '{RunStatus.succeeded.name}'"
)


def results_version(source: Session | Engine, architecture_id: int) -> Version:
    """Changes whenever a run of the architecture succeeds, a tuning changes or a sweep is created:
    (succeeded runs, latest finish time, latest tuning update, latest sweep).

    A succeeded run's result is written once, under its lease, and never changes after, so the first two
    identify the set of points a fit can be made from; the latest sweep picks the recipe the fit pools
    and the tuning's state decides the warnings. One indexed aggregate instead of reading them.
    It runs on every prediction request, so it goes straight to the driver's cursor: SQLAlchemy's
    per-statement machinery (transaction events, result wrapping) was most of that request's cost.
    A Session reads inside its own transaction (the snapshot its other reads see); an Engine reads on
    a pooled connection of its own.
    """
    if isinstance(source, Session):
        dialect = source.get_bind().dialect
        raw = source.connection().connection.dbapi_connection
        assert raw is not None
        return _read_version(raw, dialect.paramstyle, architecture_id)
    pooled = source.raw_connection()
    try:
        return _read_version(pooled, source.dialect.paramstyle, architecture_id)
    finally:
        pooled.close()  # back to the pool, which rolls the read back


def _read_version(raw: Any, paramstyle: str, architecture_id: int) -> Version:
    cursor = raw.cursor()
    try:
        cursor.execute(_VERSION_SQL.format(p="?" if paramstyle == "qmark" else "%s"), (architecture_id,) * 3)
        count, latest, tuned, sweep = cursor.fetchone()
    finally:
        cursor.close()
    return int(count), str(latest), str(tuned), sweep


class PredictionService:
    """Answers `predict` and `compare` requests from each architecture's current fit (bounded LRU memos)."""

    def __init__(
        self, settings: Settings, engine: Engine, sessions: sessionmaker[Session], max_entries: int = 4096
    ) -> None:
        self.settings, self.engine, self.sessions = settings, engine, sessions
        self.max_entries = max_entries
        self._fits: OrderedDict[FitKey, CurrentFit] = OrderedDict()
        self._answers: OrderedDict[tuple[FitKey, Hashable], bytes] = OrderedDict()
        self._flights: dict[FitKey, threading.Lock] = {}
        # Why `auto` cannot fit an architecture the slice (None: it can), under its results version: a
        # comparison asks it of every candidate, and the answer reads the ladder and the grid.
        self._slice_lacks: OrderedDict[tuple[int, Version], str | None] = OrderedDict()
        self._lock = threading.Lock()
        # Each architecture's results_version, read once for all the requests that ask at the same time.
        self._versions: CoalescedReads[Version] = CoalescedReads()

    async def predict(self, request: PredictionRequest) -> bytes:
        """The prediction's JSON body (app.schemas.PredictionPublic), memoised under its fit's key."""
        if request.architecture_id is not None:
            arch_id = request.architecture_id
        else:
            arch_id = await run_in_threadpool(self._architecture_of_spec, request)
        version = await self._versions.read(arch_id, partial(results_version, self.engine, arch_id))
        key = (arch_id, GRID_LAW if request.in_tokens else request.law, version)
        asked = (
            request.n_params,
            request.width,
            request.depth,
            request.aspect_ratio,
            request.tokens,
            request.compute,
            request.tokens_per_parameter,
            request.level,
            request.interval,
            request.seeds,
            request.method,
        )
        body = self._memoised((key, asked))
        if body is not None:
            return body

        def build() -> bytes:
            with self.sessions() as session:
                answer = answers.prediction(session, self.settings, arch_id, request, self._pinned(key))
            return answer.model_dump_json().encode()

        return await run_in_threadpool(self._remember_answer, (key, asked), build)

    async def predict_many(self, request: PredictionBatchRequest) -> PredictionBatchPublic:
        """One prediction per architecture at one N, each as POST /v1/predictions would answer it (a
        missing architecture or one without a usable fit is an item with its status, not an error)."""
        asked = request.model_dump(exclude={"architecture_ids"})

        async def one(arch_id: int) -> PredictionBatchItem:
            try:
                body = await self.predict(PredictionRequest(architecture_id=arch_id, **asked))
            except HTTPException as exc:
                return PredictionBatchItem(
                    architecture_id=arch_id, status=exc.status_code, detail=str(exc.detail)
                )
            except (NotEnoughRuns, NoScalingTrend, FitFailed) as exc:
                return PredictionBatchItem(
                    architecture_id=arch_id, status=status.HTTP_409_CONFLICT, detail=str(exc)
                )
            prediction = PredictionPublic.model_validate_json(body)
            return PredictionBatchItem(
                architecture_id=arch_id, status=status.HTTP_200_OK, prediction=prediction
            )

        ids = list(dict.fromkeys(request.architecture_ids))
        answers_by_id = dict(zip(ids, await asyncio.gather(*(one(i) for i in ids)), strict=True))
        return PredictionBatchPublic(items=[answers_by_id[i] for i in request.architecture_ids])

    def compare(self, request: CompareRequest) -> ComparePublic:
        """Candidates ranked at one N, P(best) paired by seed (app.answers.comparison)."""
        law: str = GRID_LAW if request.in_tokens else request.law
        why = "asked"
        with self.sessions() as session:
            # Each candidate's version, read once: it keys both `auto`'s choice and the fit loaded.
            versions = {i: results_version(session, i) for i in dict.fromkeys(request.architecture_ids)}
            if law == AUTO_LAW:
                law, why = self._common_law(session, versions)
            return answers.comparison(
                session,
                self.settings,
                request,
                lambda s, arch_id: self._load(s, (arch_id, law, versions[arch_id])),
                why,
            )

    def _common_law(self, session: Session, versions: dict[int, Version]) -> tuple[str, str]:
        """`auto` for a comparison: one law for every candidate, so that no design's rank rides on its
        law. The slice where every candidate's grid gives its γ, else the default law for all."""
        mw = self.settings.min_runs_for_fit
        lacking = [(i, self._slice_lacking(session, i, v, mw)) for i, v in versions.items()]
        named = [f"architecture {i}: {why}" for i, why in lacking if why]
        if not named:
            return SLICE_LAW, AUTO_SLICE
        return DEFAULT_LAW, (
            f"auto: {DEFAULT_LAW} for every candidate, as one law ranks them all and {SLICE_LAW} needs a "
            f"token-horizon grid that gives each ladder its γ ({'; '.join(named)})"
        )

    def _slice_lacking(
        self, session: Session, architecture_id: int, version: Version, min_widths: int
    ) -> str | None:
        """slice_unavailable, memoised under the architecture's results version (which a grid's runs
        finishing moves too)."""
        key = (architecture_id, version)
        with self._lock:
            if key in self._slice_lacks:
                return self._slice_lacks[key]
        why = slice_unavailable(session, architecture_id, min_widths)
        with self._lock:
            _remember(self._slice_lacks, key, why, self.max_entries)
        return why

    def current(self, session: Session, architecture_id: int, law: str = DEFAULT_LAW) -> CurrentFit:
        """The architecture's current fit as of `session`'s snapshot (the whole-run ladder's, or with
        law GRID_LAW the token-horizon grid's); raises NotEnoughRuns, FitFailed."""
        return self._load(session, (architecture_id, law, results_version(session, architecture_id)))

    def _pinned(self, key: FitKey) -> Callable[[Session, int], CurrentFit]:
        # The answer memoised under `key` is built from the fit memoised under the same key.
        return lambda session, architecture_id: self._load(session, key)

    def _load(self, session: Session, key: FitKey) -> CurrentFit:
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
            architecture_id, law, _ = key
            try:
                fresh = current_fit(session, architecture_id, self.settings.min_runs_for_fit, law)
            finally:
                with self._lock:
                    self._flights.pop(key, None)
            with self._lock:
                _remember(self._fits, key, fresh, self.max_entries)
        finally:
            flight.release()
        return fresh

    def _memoised(self, key: tuple[FitKey, Hashable]) -> bytes | None:
        with self._lock:
            return self._answers.get(key)

    def _remember_answer(self, key: tuple[FitKey, Hashable], build: Callable[[], bytes]) -> bytes:
        """`build()`'s body, memoised; errors are raised by `build` and never memoised."""
        hit = self._memoised(key)
        if hit is not None:
            return hit
        body = build()
        with self._lock:
            _remember(self._answers, key, body, self.max_entries)
        return body

    def _architecture_of_spec(self, request: PredictionRequest) -> int:
        assert request.spec is not None
        with self.engine.connect() as conn:
            found = conn.scalar(
                select(Architecture.id).where(Architecture.spec_hash == request.spec.spec_hash())
            )
        if found is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                "no architecture with this spec: POST it to /v1/architectures, then launch a sweep",
            )
        return int(found)


def _remember(memo: OrderedDict[K, V], key: K, value: V, max_entries: int) -> None:
    memo[key] = value
    memo.move_to_end(key)
    while len(memo) > max_entries:
        memo.popitem(last=False)
