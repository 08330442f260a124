"""Streams as operators tend them: dead letters to list and requeue, an app's messages to
purge. Each function is one statement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mesh.pg.database import Connection
from mesh.pg.queries import query


def purge_app(conn: Connection, app: str) -> int:
    """Delete every message and dead letter of ``app``; returns how many."""
    row = conn.execute(query("purge_app"), {"app": app}).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    id: int
    stream: str
    attempts: int
    max_attempts: int
    dead_at: datetime
    last_owner: str | None
    last_error: str
    payload: str


def list_dead_letters(
    conn: Connection, app: str, stream: str | None = None, limit: int = 100
) -> list[DeadLetterRow]:
    rows = conn.execute(query("list_dead_letters"), {"app": app, "stream": stream, "limit": limit})
    return [DeadLetterRow(*row) for row in rows]


def requeue_dead_letters(
    conn: Connection, app: str, stream: str | None = None, ids: Sequence[int] | None = None
) -> list[int]:
    """Put dead letters back on their streams with fresh attempts; returns the ids of those
    requeued (the dead letters' ids: their messages get new ones)."""
    params = {"app": app, "stream": stream, "ids": list(ids) if ids else None}
    return sorted(row[0] for row in conn.execute(query("requeue_dead_letters"), params))
