"""The database side of ``mesh bench idle``'s wake-up probes (:mod:`mesh.bench.probes`)."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

from mesh.model.outcomes import Outgoing
from mesh.pg import streams
from mesh.pg.database import Connection, translate
from mesh.pg.queries import query


def listen(conn: Connection, channel: str) -> None:
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))


def wait_for_notify(conn: Connection, timeout: float) -> bool:
    """Whether a notification arrived on ``conn`` within ``timeout`` seconds."""
    return any(True for _ in conn.notifies(timeout=timeout, stop_after=1))


def enqueue_quietly(conn: Connection, messages: Sequence[Outgoing]) -> None:
    """Enqueue without the NOTIFY (triggers off for the transaction): a lost NOTIFY. Needs a
    superuser; raises :class:`mesh.errors.DatabaseError` otherwise."""
    try:
        with conn.transaction():
            conn.execute(query("bench_probe_quiet"))
            streams.enqueue(conn, messages)
    except psycopg.Error as error:
        raise translate(error) from error


def forget_stream(conn: Connection, app: str, stream: str) -> None:
    conn.execute(query("bench_probe_forget"), {"app": app, "stream": stream})
