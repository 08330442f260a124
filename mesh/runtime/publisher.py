"""Group commit: concurrent callers share one transaction (or one read).

While one batch is being committed, new calls queue up; the next batch takes them all (up to
``max_batch``). A lone call runs at once, so grouping adds no latency, and under load one
commit carries many: far fewer round trips, WAL flushes and thread hand-offs than a
transaction each. :class:`Publisher` groups job starts (``pub``); :class:`GroupCommit` with a
batch function of their own groups the starts of workflows written as code, and the reads of
their results.

Each caller still gets its own outcome: a refused item (unknown topic, invalid input, taken
id) refuses only that caller. If the database refuses a whole batch, its items are retried
one by one, so one bad item cannot fail the others.

There is no background task: a caller that finds no batch running commits the next batch
(the oldest queued items, its own among them or not); when that commit ends, every waiter
wakes and the first to run leads the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import trio

from mesh.errors import DatabaseUnavailable
from mesh.model.graph.batch import Result
from mesh.model.messages import StartJob
from mesh.model.quorum import JobNotices
from mesh.pg.batch import Delivery
from mesh.pg.database import Connection, Database
from mesh.pg.graphs import AppVersions, process

T = TypeVar("T")
R = TypeVar("R")

BatchCommit = Callable[[Connection, list[T]], list[R | Exception]]
"""Commits a batch in one transaction (run in a database thread): each item's outcome, in
order; an exception in the list is raised to that item's caller alone."""


@dataclass(slots=True)
class _Item(Generic[T, R]):
    value: T
    settled: bool = False
    result: R | None = None
    error: Exception | None = None


class GroupCommit(Generic[T, R]):
    def __init__(self, db: Database, commit: BatchCommit[T, R], *, max_batch: int = 100) -> None:
        self.db = db
        self.commit = commit
        self.max_batch = max_batch
        self.batches = 0
        self._queue: list[_Item[T, R]] = []
        self._leading = False
        self._progress = trio.Event()
        """Set (then replaced) after each batch: a waiter may lead the next."""

    async def submit(self, value: T) -> R:
        """Commit ``value`` (with whatever else is queued); its outcome."""
        item: _Item[T, R] = _Item(value)
        self._queue.append(item)
        try:
            while not item.settled:
                if self._leading:
                    await self._progress.wait()
                else:
                    await self._lead()
        except trio.Cancelled:
            if item in self._queue:  # not handed to the database yet: nothing happens
                self._queue.remove(item)
            raise
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]

    async def _lead(self) -> None:
        """Commit one batch (the oldest queued items), then let the next waiter lead: a
        leader whose own item is done returns at once, however busy the queue stays."""
        self._leading = True
        try:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            # Shielded: the batch holds other callers' items and may already be
            # committing; every caller in it must hear how it ended.
            with trio.CancelScope(shield=True):
                await self._commit(batch)
        finally:
            self._leading = False
            self._progress.set()
            self._progress = trio.Event()

    async def _commit(self, batch: list[_Item[T, R]]) -> None:
        self.batches += 1
        try:
            try:
                outcomes = await self.db.run(self.commit, [item.value for item in batch])
                for item, outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, Exception):
                        item.error = outcome
                    else:
                        item.result = outcome
            except DatabaseUnavailable as error:
                for item in batch:
                    item.error = error
            except Exception:  # refused by the database, or failed in mesh: find the item
                if len(batch) == 1:
                    raise
                for item in batch:  # that fails alone; the rest commit
                    await self._commit([item])
        except Exception as error:  # handed to the caller it belongs to
            for item in batch:
                if item.result is None and item.error is None:
                    item.error = error
        finally:
            for item in batch:
                item.settled = True


class Publisher(GroupCommit[StartJob, Result]):
    """Job starts of YAML graphs, grouped."""

    def __init__(
        self,
        db: Database,
        app: str,
        versions: AppVersions,
        *,
        max_batch: int = 100,
        notices: JobNotices | None = None,
    ) -> None:
        def commit(conn: Connection, messages: list[StartJob]) -> list[Result | Exception]:
            deliveries = [Delivery(m) for m in messages]
            return list(process(conn, app, versions, deliveries, notices=notices).results)

        super().__init__(db, commit, max_batch=max_batch)

    async def start(self, message: StartJob) -> Result:
        """Commit the start of one job (with whatever other starts are queued)."""
        return await self.submit(message)
