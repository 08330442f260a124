"""The node's single LISTEN connection and the fan-out of its notifications.

One dedicated autocommit connection per node (not from the pool). The listener waits on its
socket with ``trio.lowlevel.wait_readable``, drains notifications without blocking, and calls
the callbacks subscribed to each channel (in the trio thread). After every (re)connect it
LISTENs on every channel and NOTIFYs a private one, and expects to hear itself back (a LISTEN
that cannot deliver, as through a transaction-mode pooler, is refused loudly); then it calls
the reconnect callbacks, so consumers claim at once and catch up on anything that was sent
while it was away.

Afterwards it checks the connection with a plain round trip when nothing else used it for
``check_interval`` (jittered), not with a NOTIFY: every NOTIFY costs each listening
connection of the database a transaction, so N nodes self-checking that way would cost N^2 /
interval transactions per second. TCP keepalives find a dead peer in between.

The connection is also the node's one *session*: :meth:`Listener.call` runs short statements
on it, such as ``pg_try_advisory_lock`` for leader elections (a session lock lives exactly as
long as this connection: :attr:`Listener.session` changes when it is replaced).
"""

from __future__ import annotations

import logging
import random
import typing
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
import trio
from psycopg import sql

from mesh.errors import DatabaseUnavailable
from mesh.model.ids import new_guid
from mesh.model.log_limit import LogLimit
from mesh.model.messages import check_notify_payload
from mesh.pg.database import Connection, connection_settings, redact, translate
from mesh.pg.queries import query

log = logging.getLogger(__name__)

NotifyCallback = Callable[[str], None]
T = TypeVar("T")


class ListenerStale(Exception):
    """The self-check notification did not come back in time."""


SELF_CHECK_TIMEOUT = 10.0
"""Seconds a new connection has to deliver its own NOTIFY back."""


@dataclass(eq=False)
class _Call:
    """A statement waiting for its turn on the listening connection."""

    fn: Callable[[Connection], Any]
    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: BaseException | None = None


class Listener:
    def __init__(self, dsn: str, *, name: str, check_interval: float = 60.0) -> None:
        self.dsn = dsn
        self.name = name
        self.check_interval = check_interval
        self._subscribers: dict[str, list[NotifyCallback]] = {}
        self._reconnect_callbacks: list[Callable[[], None]] = []
        self._listening: set[str] = set()
        self._inbox: deque[tuple[str, str]] = deque()
        self._kick: trio.CancelScope | None = None
        self._ping_channel = f"mesh_ping_{new_guid().lower()}"
        self._heard_self = trio.Event()
        self._listen_applied = trio.Event()
        self._calls: deque[_Call] = deque()
        self.healthy = False
        self.connects = 0
        """Connections made so far; the number of the current one (its *session*)."""
        self.received = 0
        self.callback_failures = 0
        self._log_limit = LogLimit()
        self.backend_pid: int | None = None

    def subscribe(self, channel: str, callback: NotifyCallback) -> None:
        """Call ``callback(payload)`` for every notification on ``channel`` from now on.

        A callback that raises is logged and skipped: a notification (which any database
        login can send, with any payload) never stops the listener or its other callbacks.
        """
        self._subscribers.setdefault(channel, []).append(callback)
        if self._kick is not None:
            self._kick.cancel()  # LISTEN at once on the running connection

    def unsubscribe(self, channel: str, callback: NotifyCallback) -> None:
        """Stop calling ``callback`` for ``channel``; a channel left without callbacks is
        UNLISTENed (its notifications no longer wake this process)."""
        callbacks = self._subscribers.get(channel, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks and channel in self._subscribers:
            del self._subscribers[channel]
            if self._kick is not None:
                self._kick.cancel()

    @contextmanager
    def subscription(self, channels: list[str], callback: NotifyCallback) -> Iterator[None]:
        """``callback`` subscribed to ``channels`` for the duration of the block (an actor's
        run: a restarted actor must not leave its earlier subscriptions behind)."""
        for channel in channels:
            self.subscribe(channel, callback)
        try:
            yield
        finally:
            for channel in channels:
                self.unsubscribe(channel, callback)

    async def wait_listening(self, channels: list[str]) -> None:
        """Return once LISTEN is in place for every one of ``channels``."""
        while not set(channels) <= self._listening:
            await self._listen_applied.wait()

    @property
    def session(self) -> int | None:
        """The current connection's number while it is healthy, else None. Session state
        (advisory locks) taken under one number is gone once it changes."""
        return self.connects if self.healthy else None

    async def call(self, fn: Callable[[Connection], T], *, timeout: float = 10.0) -> T:
        """Run ``fn(conn)`` on the listening connection, between its reads, and return its
        result. For short statements whose effect must live as long as the connection (session
        locks) or that need no pooled connection. Raises :class:`DatabaseUnavailable` when the
        listener is not connected, or the connection fails or takes over ``timeout``."""
        if not self.healthy:
            raise DatabaseUnavailable("database unavailable: the listener is not connected")
        request = _Call(fn)
        self._calls.append(request)
        if self._kick is not None:
            self._kick.cancel()
        with trio.move_on_after(timeout) as scope:
            await request.done.wait()
        if scope.cancelled_caught:
            if request in self._calls:
                self._calls.remove(request)
            raise DatabaseUnavailable(
                f"database unavailable: the listener did not answer within {timeout:g}s"
            )
        if request.error is not None:
            raise request.error
        return typing.cast(T, request.result)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every (re)connect, once LISTEN is in place again."""
        self._reconnect_callbacks.append(callback)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep a healthy listening connection forever; reconnect with jittered backoff."""
        backoff = 0.2
        started = False

        def report_started() -> None:
            nonlocal started
            if not started:
                started = True
                task_status.started()

        while True:
            conn: Connection | None = None
            try:
                conn = await trio.to_thread.run_sync(self._connect, abandon_on_cancel=True)
                backoff = 0.2
                await self._serve(conn, report_started)
            except (
                DatabaseUnavailable,
                ListenerStale,
                trio.TooSlowError,
                psycopg.Error,
                OSError,
            ) as error:
                level = logging.WARNING if self.healthy or not started else logging.INFO
                log.log(
                    level,
                    "event=listener_lost error=%r retry_in=%.1fs",
                    str(error).strip(),
                    backoff,
                )
            finally:
                self.healthy = False
                self._listening.clear()
                self._fail_calls()
                if conn is not None:
                    # close() only sends Terminate and closes the socket: it does not wait for
                    # the server, so it is safe here even when we are being cancelled.
                    conn.close()
            report_started()  # the node runs on polling until the listener is back
            await trio.sleep(backoff)
            backoff = min(5.0, backoff * 2) * random.uniform(0.8, 1.2)

    def _connect(self) -> Connection:
        try:
            conn: Connection = psycopg.connect(
                self.dsn,
                autocommit=True,
                **connection_settings(f"mesh-listener:{self.name}", 10.0),
            )
        except psycopg.Error as error:
            raise translate(error) from error
        conn.add_notify_handler(lambda n: self._inbox.append((n.channel, n.payload)))
        return conn

    async def _serve(self, conn: Connection, report_started: Callable[[], None]) -> None:
        self.backend_pid = conn.info.backend_pid
        await self._listen_all(conn)
        await self._check_delivery(conn)
        self.connects += 1
        self.healthy = True
        log.info(
            "event=listener_connected pid=%s channels=%d", self.backend_pid, len(self._listening)
        )
        report_started()
        for callback in self._reconnect_callbacks:
            callback()
        next_check = trio.current_time() + self._jittered()
        fd = conn.pgconn.socket
        while True:
            if self._listening.symmetric_difference(self._subscribers) - {self._ping_channel}:
                await self._listen_all(conn)
            while self._calls:
                await self._run_call(conn, self._calls.popleft())
                next_check = trio.current_time() + self._jittered()
            if trio.current_time() >= next_check:
                await self._execute(conn, sql.SQL(query("ping")))  # a round trip, no NOTIFY
                next_check = trio.current_time() + self._jittered()
            with trio.move_on_after(max(0.0, next_check - trio.current_time())) as scope:
                self._kick = scope
                await trio.lowlevel.wait_readable(fd)
            self._kick = None
            if not scope.cancelled_caught:
                self._read_available(conn)
            self._dispatch()

    async def _check_delivery(self, conn: Connection) -> None:
        """NOTIFY our own channel and hear it back, once per connection."""
        self._heard_self = trio.Event()
        await self._execute(conn, sql.SQL("NOTIFY {}").format(sql.Identifier(self._ping_channel)))
        fd = conn.pgconn.socket
        with trio.move_on_after(SELF_CHECK_TIMEOUT):
            while not self._heard_self.is_set():
                await trio.lowlevel.wait_readable(fd)
                self._read_available(conn)
                self._dispatch()
        if not self._heard_self.is_set():
            raise ListenerStale(
                f"a NOTIFY on this connection did not come back within {SELF_CHECK_TIMEOUT:g}s: "
                "LISTEN needs a session of its own (a transaction-mode pooler cannot carry it; "
                "point database.listen_url at Postgres directly)"
            )

    async def _run_call(self, conn: Connection, request: _Call) -> None:
        try:
            request.result = await self._in_thread(conn, request.fn)
        except DatabaseUnavailable as error:
            request.error = error
            raise
        except trio.TooSlowError:
            request.error = DatabaseUnavailable("database unavailable: the listener hung")
            raise
        except Exception as error:  # a refused statement: the caller's to handle
            request.error = error
        finally:
            request.done.set()

    def _fail_calls(self) -> None:
        while self._calls:
            request = self._calls.popleft()
            request.error = DatabaseUnavailable(
                "database unavailable: the listener lost its connection"
            )
            request.done.set()

    def _jittered(self) -> float:
        """The next check's delay: nodes started together do not check together."""
        return self.check_interval * random.uniform(0.8, 1.2)

    async def _listen_all(self, conn: Connection) -> None:
        """LISTEN to every subscribed channel not yet listened to, UNLISTEN the others."""
        channels = [self._ping_channel, *self._subscribers]
        missing = [c for c in channels if c not in self._listening]
        extra = [c for c in self._listening if c not in channels]
        statements = [sql.SQL("LISTEN {}").format(sql.Identifier(c)) for c in missing] + [
            sql.SQL("UNLISTEN {}").format(sql.Identifier(c)) for c in extra
        ]
        if statements:
            await self._execute(conn, sql.SQL("; ").join(statements))
            self._listening.update(missing)
            self._listening.difference_update(extra)
            self._listen_applied.set()
            self._listen_applied = trio.Event()

    async def _execute(self, conn: Connection, statement: sql.SQL | sql.Composed) -> None:
        await self._in_thread(conn, lambda c: c.execute(statement))

    async def _in_thread(self, conn: Connection, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)`` in a worker thread, at most 20 s, driver errors translated; then
        deliver the notifications that arrived with its reply."""

        def run() -> T:
            try:
                return fn(conn)
            except psycopg.Error as error:
                raise translate(error) from error

        try:
            with trio.fail_after(20.0):
                return await trio.to_thread.run_sync(run, abandon_on_cancel=True)
        finally:
            self._dispatch()

    def _read_available(self, conn: Connection) -> None:
        """Read what the socket holds without blocking; queue its notifications."""
        pgconn = conn.pgconn
        try:
            pgconn.consume_input()
        except psycopg.Error as error:
            raise translate(error) from error
        while (notify := pgconn.notifies()) is not None:
            self._inbox.append(
                (notify.relname.decode(errors="replace"), notify.extra.decode(errors="replace"))
            )

    def _dispatch(self) -> None:
        """Deliver queued notifications (in the trio thread); note our own self-check."""
        while self._inbox:
            channel, payload = self._inbox.popleft()
            if channel == self._ping_channel:
                self._heard_self.set()
                continue
            self.received += 1
            for callback in list(self._subscribers.get(channel, ())):
                try:
                    callback(payload)
                except Exception:
                    self.callback_failures += 1
                    name = str(getattr(callback, "__qualname__", callback))
                    held = self._log_limit.allow(name, trio.current_time())
                    if held is not None:
                        log.exception(
                            "event=notification_callback_failed channel=%s callback=%s "
                            "payload=%r held_back=%d",
                            channel,
                            name,
                            payload[:200],
                            held,
                        )

    def statistics(self) -> ListenerStatistics:
        return ListenerStatistics(
            healthy=self.healthy,
            connects=self.connects,
            received=self.received,
            callback_failures=self.callback_failures,
            channels=len(self._subscribers),
            backend_pid=self.backend_pid,
            dsn=redact(self.dsn),
        )


@dataclass(frozen=True, slots=True)
class ListenerStatistics:
    healthy: bool
    """The LISTEN connection is up (it heard itself when it connected, and its last round
    trip answered)."""
    connects: int
    received: int
    callback_failures: int
    channels: int
    backend_pid: int | None
    dsn: str
    """Without its password."""


def notify(conn: Connection, channel: str, payload: str = "") -> None:
    """Send one notification; refuses payloads over the NOTIFY limit (in encoded bytes)."""
    check_notify_payload(payload)
    conn.execute(query("notify"), {"channel": channel, "payload": payload})
