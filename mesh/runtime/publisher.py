"""Group commit for job starts: concurrent ``pub`` calls share one transaction.

While one batch of starts is being committed, new ``pub`` calls queue up; the next batch
takes them all (up to ``max_batch``). A lone ``pub`` runs at once, so grouping adds no
latency, and under load one commit carries many starts: far fewer round trips, WAL flushes
and thread hand-offs than a transaction each.

Each caller still gets its own outcome: a refused start (unknown topic, invalid input,
taken id) refuses only that start. If the database refuses a whole batch, its starts are
retried one by one, so one bad start cannot fail the others.

There is no background task: a caller that finds no batch running commits the next batch
(the oldest queued starts, its own among them or not); when that commit ends, every waiter
wakes and the first to run leads the next one.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from mesh.errors import DatabaseError, DatabaseUnavailable
from mesh.model.engine.batch import Result
from mesh.model.messages import StartJob
from mesh.pg.database import Database
from mesh.pg.workflows import AppVersions, Delivery, process


@dataclass(slots=True)
class _Start:
    message: StartJob
    settled: bool = False
    result: Result | None = None
    error: Exception | None = None


class Publisher:
    def __init__(
        self, db: Database, app: str, versions: AppVersions, *, max_batch: int = 100
    ) -> None:
        self.db = db
        self.app = app
        self.versions = versions
        self.max_batch = max_batch
        self.batches = 0
        self._queue: list[_Start] = []
        self._leading = False
        self._progress = trio.Event()
        """Set (then replaced) after each batch: a waiter may lead the next."""

    async def start(self, message: StartJob) -> Result:
        """Commit the start of one job (with whatever other starts are queued)."""
        start = _Start(message)
        self._queue.append(start)
        try:
            while not start.settled:
                if self._leading:
                    await self._progress.wait()
                else:
                    await self._lead()
        except trio.Cancelled:
            if start in self._queue:  # not handed to the database yet: nothing happens
                self._queue.remove(start)
            raise
        if start.error is not None:
            raise start.error
        assert start.result is not None
        return start.result

    async def _lead(self) -> None:
        """Commit one batch (the oldest queued starts), then let the next waiter lead: a
        leader whose own start is done returns at once, however busy the queue stays."""
        self._leading = True
        try:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            # Shielded: the batch holds other callers' starts and may already be
            # committing; every caller in it must hear how it ended.
            with trio.CancelScope(shield=True):
                await self._commit(batch)
        finally:
            self._leading = False
            self._wake()

    def _wake(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    async def _commit(self, batch: list[_Start]) -> None:
        self.batches += 1
        try:
            try:
                report = await self.db.run(
                    process, self.app, self.versions, [Delivery(s.message) for s in batch]
                )
                for start, result in zip(batch, report.results, strict=True):
                    start.result = result
            except DatabaseUnavailable as error:
                for start in batch:
                    start.error = error
            except DatabaseError:
                if len(batch) == 1:
                    raise
                for start in batch:  # find the start the database refuses; the rest commit
                    await self._commit([start])
        except Exception as error:  # handed to the caller it belongs to
            for start in batch:
                if start.result is None and start.error is None:
                    start.error = error
        finally:
            for start in batch:
                start.settled = True
