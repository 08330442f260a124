"""The bridge between trio and psycopg: a sync ``ConnectionPool`` driven from worker threads.

psycopg's async API runs only under asyncio, so every database call goes through
``trio.to_thread.run_sync`` with a ``CapacityLimiter`` sized to the pool. This is
the one module that hands work to threads for the database. Trio cannot interrupt a query in a
thread, so every connection carries a ``statement_timeout`` and
``idle_in_transaction_session_timeout``, and calls are abandoned (not waited for) when their
trio scope is cancelled: shutdown stays bounded even when the database hangs.

Connections are in autocommit mode: a single statement costs one round trip. Multi-statement
units use ``with conn.transaction():`` inside the function passed to :meth:`Database.run`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
import psycopg_pool
import trio
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from mesh.errors import ConfigError, ConnectionLost, DatabaseError, DatabaseUnavailable
from mesh.pg.queries import query

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

Connection = psycopg.Connection[tuple[Any, ...]]
Cursor = psycopg.Cursor[tuple[Any, ...]]


def redact(dsn: str) -> str:
    """The DSN without its password, for logs and errors."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "<unparsable database url>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo(**{k: str(v) for k, v in params.items()})


def url_parts(dsn: str) -> dict[str, str]:
    """A libpq URL or key=value string as its parts (host, port, user, password, dbname ...)."""
    try:
        return {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    except psycopg.Error as error:
        raise translate(error) from error


def connection_settings(application_name: str, statement_timeout: float) -> dict[str, Any]:
    """Connection keywords every mesh connection gets (pool and listener alike)."""
    timeout_ms = int(statement_timeout * 1000)
    return {
        "application_name": application_name[:63],
        "connect_timeout": 5,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "options": (
            f"-c statement_timeout={timeout_ms} "
            f"-c idle_in_transaction_session_timeout={timeout_ms * 2}"
        ),
    }


def translate(error: Exception) -> DatabaseError:
    """Map a driver error onto the mesh error tree (the one boundary where this happens)."""
    if isinstance(error, psycopg.OperationalError) and error.sqlstate is None:
        # No error from the server (a refused statement carries a SQLSTATE): the connection
        # itself broke, possibly after a COMMIT whose reply never arrived.
        return ConnectionLost(f"database unavailable: {str(error).strip() or 'connection lost'}")
    if isinstance(error, psycopg.OperationalError | psycopg_pool.PoolTimeout):
        return DatabaseUnavailable(
            f"database unavailable: {str(error).strip() or type(error).__name__}"
        )
    if isinstance(error, psycopg.errors.ReadOnlySqlTransaction):
        # A failover left us on a standby: reconnecting finds the new primary.
        return DatabaseUnavailable(f"database is read-only (standby after failover?): {error}")
    return DatabaseError(f"database error: {str(error).strip()}")


class Database:
    """A pool of connections to one Postgres, used from trio.

    ``run(fn, *args)`` calls ``fn(conn, *args)`` in a thread with a pooled connection and
    returns its result. Driver errors come out as :class:`DatabaseUnavailable` (retry later) or
    :class:`DatabaseError`.
    """

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 8,
        application_name: str = "mesh",
        statement_timeout: float = 30.0,
        acquire_timeout: float = 10.0,
        max_idle: float = 60.0,
        through_pooler: bool = False,
    ) -> None:
        """``through_pooler``: ``dsn`` is a transaction-mode pooler (PgBouncer): no
        server-side prepared statements (a later transaction may run on another server
        connection), and the timeouts must come from the role, since poolers drop the
        connection's ``options`` (:func:`check_timeouts` verifies them)."""
        self.dsn = dsn
        self.pool_size = pool_size
        self._limiter = trio.CapacityLimiter(pool_size)
        self._pool = psycopg_pool.ConnectionPool(
            dsn,
            # An idle node holds no pooled connection it does not use: the pool closes one
            # connection per ``max_idle`` seconds that it went unused, down to none.
            min_size=0,
            max_size=pool_size,
            max_idle=max_idle,
            open=False,
            kwargs={
                "autocommit": True,
                **connection_settings(application_name, statement_timeout),
                **({"prepare_threshold": None} if through_pooler else {}),
            },
            timeout=acquire_timeout,
            reconnect_timeout=365 * 86400.0,  # keep trying: an outage must never end the node
            name=application_name,
        )
        self.calls = 0
        self.failures = 0

    async def open(self) -> None:
        """Start the pool (without waiting for its connections)."""
        await trio.to_thread.run_sync(lambda: self._pool.open(wait=False), abandon_on_cancel=True)

    async def wait_until_reachable(
        self, *, initial_backoff: float = 0.5, maximum_backoff: float = 10.0
    ) -> None:
        """Return once a connection succeeds; log and retry with jittered backoff until then.

        Probes with a direct connection rather than the pool, so each failure is seen (and
        logged) at once instead of after the pool's acquire timeout.
        """
        backoff = initial_backoff
        while True:
            try:
                probe = await trio.to_thread.run_sync(
                    connect_sync, self.dsn, "mesh-probe", 5.0, abandon_on_cancel=True
                )
                probe.close()
                return
            except DatabaseUnavailable as error:
                log.warning(
                    "event=database_unreachable url=%s retry_in=%.1fs error=%r",
                    redact(self.dsn),
                    backoff,
                    str(error).splitlines()[0],
                )
                await trio.sleep(backoff)
                backoff = min(maximum_backoff, backoff * 2) * random.uniform(0.8, 1.2)

    async def run(
        self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(conn, *args, **kwargs)`` in a worker thread with a pooled connection."""
        self.calls += 1
        return await trio.to_thread.run_sync(
            self._call, fn, args, kwargs, limiter=self._limiter, abandon_on_cancel=True
        )

    def _call(self, fn: Callable[..., T], args: tuple[object, ...], kwargs: dict[str, object]) -> T:
        try:
            with self._pool.connection() as conn:
                return fn(conn, *args, **kwargs)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
            self.failures += 1
            raise translate(error) from error

    async def close(self, timeout: float = 5.0) -> None:
        """Close the pool; gives up after ``timeout`` seconds (the database may be gone)."""
        with trio.move_on_after(timeout):
            await trio.to_thread.run_sync(
                lambda: self._pool.close(timeout=timeout), abandon_on_cancel=True
            )

    def statistics(self) -> DatabaseStatistics:
        stats = self._pool.get_stats()
        return DatabaseStatistics(
            pool_size=stats.get("pool_size", 0),
            pool_available=stats.get("pool_available", 0),
            requests_waiting=stats.get("requests_waiting", 0),
            calls=self.calls,
            failures=self.failures,
        )


@dataclass(frozen=True, slots=True)
class DatabaseStatistics:
    pool_size: int
    """Connections open."""
    pool_available: int
    """Of those, idle."""
    requests_waiting: int
    """Calls waiting for a connection."""
    calls: int
    failures: int


def connect_sync(
    dsn: str, application_name: str = "mesh-cli", statement_timeout: float = 60.0
) -> Connection:
    """One plain autocommit connection, for CLI commands and migrations."""
    try:
        return psycopg.connect(
            dsn, autocommit=True, **connection_settings(application_name, statement_timeout)
        )
    except psycopg.Error as error:
        raise translate(error) from error


def run_once(
    dsn: str,
    fn: Callable[Concatenate[Connection, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Connect, run ``fn(conn, ...)``, disconnect: for one-shot commands. Driver errors come
    out translated, like everywhere else."""
    with connect_sync(dsn) as conn:
        try:
            return fn(conn, *args, **kwargs)
        except psycopg.Error as error:
            raise translate(error) from error


def check_timeouts(conn: Connection) -> None:
    """Refuse a session without a ``statement_timeout``: trio cannot cancel a statement in a
    thread, so an unbounded one could hang a node's shutdown. A transaction-mode pooler
    drops the ``options`` every mesh connection sends them in."""
    row = conn.execute(query("session_timeouts")).fetchone()
    assert row is not None
    if row[0] in ("0", "0ms") or row[1] in ("0", "0ms"):
        raise ConfigError(
            "<database>",
            "database.url",
            f"sessions run with statement_timeout={row[0]} and "
            f"idle_in_transaction_session_timeout={row[1]} (0: none); a pooler such as "
            "PgBouncer drops the options mesh sets them with",
            "set them for the login: ALTER ROLE <user> SET statement_timeout = '30s'; "
            "ALTER ROLE <user> SET idle_in_transaction_session_timeout = '60s' (and let "
            "PgBouncer pass the options by: ignore_startup_parameters = options)",
        )


def server_facts(conn: Connection) -> dict[str, Any]:
    """The server's version and ``synchronous_commit``, as benchmarks report them."""
    row = conn.execute(query("server_facts")).fetchone()
    assert row is not None
    return {"postgres": row[0], "synchronous_commit": row[1]}
