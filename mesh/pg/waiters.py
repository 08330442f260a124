"""The waits of one client, shared: one listening connection for all of them, and no pooled
connection held while anyone waits.

A client (:class:`mesh.pg.client.MeshClient`, and through it :class:`mesh.client.Client`)
registers a :class:`Waiter` per wait. The first registration starts a thread that opens a
connection of its own and LISTENs on the app's job channel; a notification names jobs that
ended, and the thread reads the waited ones among them in one query (a NOTIFY only says what
to re-read: any login may send one). Every ``recheck`` seconds it also reads every waited
job, so a notification that was lost costs at most that long. When nobody has waited for
``linger`` seconds the thread closes its connection and ends; the next wait starts it again.

A waiter is woken by the ``wake`` callable it registered with: ``threading.Event.set`` for
a blocking caller, a thread-safe call into an event loop for an async one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from mesh.errors import InvalidPayload
from mesh.model.ids import job_channel
from mesh.model.jobs import FINAL, JobRecord, job_events
from mesh.pg.database import connection_settings
from mesh.pg.job_queries import get_results

log = logging.getLogger(__name__)

ANSWERED = FINAL | {"persisted"}


@dataclass(eq=False)
class Waiter:
    """One wait for one job: ``record`` once it finished (or persisted)."""

    job_id: str
    wake: Callable[[], None]
    record: JobRecord | None = None
    done: bool = field(default=False)


class JobWaiters:
    """The waits of one app's client, served by one listening thread."""

    def __init__(
        self, dsn: str, app: str, *, recheck: float = 1.0, linger: float = 30.0, name: str = ""
    ) -> None:
        self.dsn = dsn
        self.app = app
        self.recheck = recheck
        self.linger = linger
        self.name = name or f"mesh-client-listener:{app}"
        self._lock = threading.Lock()
        self._waiters: dict[str, list[Waiter]] = {}
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        """Set by the current listener thread once it listens (or failed)."""
        self._open = False
        self._closed = False
        self._failure: BaseException | None = None

    @property
    def listening(self) -> bool:
        """Whether the listening connection is open now."""
        return self._open

    def add(self, job_id: str, wake: Callable[[], None], *, timeout: float = 10.0) -> Waiter:
        """Register a wait; returns once the listener listens (so a notification sent from
        now on reaches the waiter). The caller reads the job once itself after this (it may
        have ended before), and then waits to be woken."""
        waiter = Waiter(job_id, wake)
        with self._lock:
            if self._closed:
                raise RuntimeError("the client is closed")
            self._waiters.setdefault(job_id, []).append(waiter)
            if self._thread is None or not self._thread.is_alive():
                self._ready = threading.Event()
                self._failure = None
                self._thread = threading.Thread(
                    target=self._serve, args=(self._ready,), name=self.name, daemon=True
                )
                self._thread.start()
            ready = self._ready
        if not ready.wait(timeout):
            self.remove(waiter)
            failure = self._failure
            raise failure if failure else TimeoutError("the job listener did not start")
        return waiter

    def remove(self, waiter: Waiter) -> None:
        with self._lock:
            waiters = self._waiters.get(waiter.job_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(waiter.job_id, None)

    def finish(self, record: JobRecord) -> None:
        """Hand ``record`` to the waiters of its job if it answered them (also used by a
        waiter's own first read)."""
        if not record.answered:
            return
        with self._lock:
            waiters = self._waiters.pop(record.key, [])
        for waiter in waiters:
            waiter.record, waiter.done = record, True
            waiter.wake()

    def close(self, timeout: float = 5.0) -> None:
        """Stop listening (waiters left are woken without a record)."""
        with self._lock:
            self._closed = True
            thread = self._thread
            left = [w for waiters in self._waiters.values() for w in waiters]
            self._waiters.clear()
        for waiter in left:
            waiter.wake()
        if thread is not None:
            thread.join(timeout)

    def _waited(self) -> list[str]:
        with self._lock:
            return list(self._waiters)

    def _serve(self, ready: threading.Event) -> None:
        try:
            with psycopg.connect(
                self.dsn, autocommit=True, **connection_settings(self.name, 30.0)
            ) as conn:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(job_channel(self.app))))
                self._open = True
                ready.set()
                try:
                    self._listen(conn)
                finally:
                    self._open = False
        except BaseException as error:  # a waiter that started it hears why
            self._failure = error
            log.warning("event=client_listener_failed app=%s error=%r", self.app, str(error))
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None
                left = [w for waiters in self._waiters.values() for w in waiters]
            for waiter in left:
                waiter.wake()
        finally:
            ready.set()

    def _listen(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        idle_since: float | None = None
        next_recheck = time.monotonic() + self.recheck
        while not self._closed:
            waited = self._waited()
            now = time.monotonic()
            if not waited:
                idle_since = idle_since or now
                with self._lock:  # nobody waits, nobody may register meanwhile: stop
                    if now - idle_since >= self.linger and not self._waiters:
                        self._thread = None
                        return
            else:
                idle_since = None
            if waited and now >= next_recheck:
                self._read(conn, waited)
                next_recheck = now + self.recheck
            ended: set[str] = set()
            for note in conn.notifies(timeout=min(self.recheck, 0.5), stop_after=1):
                with contextlib.suppress(InvalidPayload):
                    ended |= {e.job_id for e in job_events(note.payload) if e.status in ANSWERED}
            if ended:
                self._read(conn, [key for key in self._waited() if key in ended])

    def _read(self, conn: psycopg.Connection[tuple[object, ...]], keys: Sequence[str]) -> None:
        if not keys:
            return
        for record in get_results(conn, self.app, list(keys)):
            if record is not None:
                self.finish(record)
