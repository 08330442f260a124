"""The benchmarks' own database calls and SQL (``benchmarks/sql/bench.sql``, loaded here and
never by the product): the raw-SQL baseline's statements, the vacuum a measurement starts
from, and the wake-up probes of ``mesh bench idle`` (:mod:`benchmarks.probes`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import psycopg
from psycopg import sql

from mesh.model.outcomes import Outgoing
from mesh.pg import streams
from mesh.pg.database import Connection, translate

_HEADER = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)


@cache
def _queries() -> dict[str, str]:
    text = (Path(__file__).parent / "sql" / "bench.sql").read_text(encoding="utf-8")
    parts = _HEADER.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def query(name: str) -> str:
    """The SQL of one of the benchmarks' named queries."""
    return _queries()[name]


def vacuum_streams(conn: Connection) -> None:
    """Start a measurement from a vacuumed table, so one run's dead rows stay its own."""
    conn.execute(query("vacuum_streams"))


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
