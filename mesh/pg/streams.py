"""Streams: the durable message bus on ``mesh.stream_messages``.

Each function takes a connection (from :meth:`mesh.pg.database.Database.run` or a caller's
own transaction) and performs one batched statement. Properties (DESIGN §5): batched enqueue
in the caller's transaction, delayed visibility, batched claim with lease and fencing token,
settle (ack or dead-letter) atomically with follow-up messages, heartbeat, reaper, attempts
counted at claim, NOTIFY wake-ups from a statement trigger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mesh.model.ids import validate_app_id, validate_stream
from mesh.model.outcomes import Ack, DeadLetter, Outcome, Outgoing, Retry, dead_letter_replies
from mesh.pg.database import Connection
from mesh.pg.queries import query

REAPED_ERROR = "claimed too many times without completing: the handler crashed or hung each time"


@dataclass(frozen=True, slots=True)
class StreamClaim:
    """One leased message. ``attempt`` is its fencing token: settle only with this value."""

    id: int
    attempt: int
    max_attempts: int
    payload: str
    enqueued_at: datetime


@dataclass(frozen=True, slots=True)
class Settlement:
    """An outcome for a claimed message, ready to be persisted."""

    claim: StreamClaim
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class StreamStats:
    app: str
    stream: str
    ready: int
    delayed: int
    leased: int
    lag_seconds: float
    dead_lettered: int

    @property
    def depth(self) -> int:
        """Messages not yet done: ready, delayed and leased."""
        return self.ready + self.delayed + self.leased


@dataclass(frozen=True, slots=True)
class DeadMessage:
    """A message the reaper dead-lettered because it was claimed too often."""

    id: int
    attempts: int
    payload: str


def enqueue(conn: Connection, messages: Sequence[Outgoing]) -> list[int]:
    """Insert ``messages`` in one statement; returns their ids in order.

    Called inside a caller's transaction, the messages commit (and notify) with it.
    """
    if not messages:
        return []
    for message in messages:
        validate_app_id(message.app)
        validate_stream(message.stream)
    rows = conn.execute(
        query("enqueue"),
        {
            "apps": [m.app for m in messages],
            "streams": [m.stream for m in messages],
            "priorities": [m.priority for m in messages],
            "max_attempts": [m.max_attempts for m in messages],
            "delays": [float(m.delay) for m in messages],
            "payloads": [m.payload.decode() for m in messages],
        },
    ).fetchall()
    return [row[0] for row in rows]


def claim(
    conn: Connection, *, app: str, stream: str, owner: str, limit: int, lease: float
) -> list[StreamClaim]:
    """Lease up to ``limit`` visible messages of ``app``/``stream`` for ``lease`` seconds."""
    rows = conn.execute(
        query("claim"),
        {"app": app, "stream": stream, "owner": owner, "limit": limit, "lease": lease},
    ).fetchall()
    return [StreamClaim(*row) for row in rows]


def extend_leases(
    conn: Connection, *, owner: str, claims: Sequence[StreamClaim], lease: float
) -> set[int]:
    """Heartbeat: extend the leases still held; returns the ids that were extended."""
    if not claims:
        return set()
    rows = conn.execute(
        query("extend_leases"),
        {
            "owner": owner,
            "lease": lease,
            "ids": [c.id for c in claims],
            "attempts": [c.attempt for c in claims],
        },
    ).fetchall()
    return {row[0] for row in rows}


def settle(conn: Connection, *, owner: str, settlements: Sequence[Settlement]) -> set[int]:
    """Persist a batch of outcomes; returns the ids whose lease was still held (and settled).

    Acks and dead letters (with their follow-ups) go in one statement, retries in another.
    Anything whose lease was lost is left untouched: no ack, no effects.
    """
    done: set[int] = set()
    finals = [s for s in settlements if not isinstance(s.outcome, Retry)]
    retries = [s for s in settlements if isinstance(s.outcome, Retry)]
    if finals:
        follow_ups = [
            (s.claim.id, f)
            for s in finals
            if isinstance(s.outcome, Ack | DeadLetter)
            for f in s.outcome.follow_ups
        ]
        rows = conn.execute(
            query("settle"),
            {
                "owner": owner,
                "ids": [s.claim.id for s in finals],
                "attempts": [s.claim.attempt for s in finals],
                "errors": [
                    s.outcome.error if isinstance(s.outcome, DeadLetter) else None for s in finals
                ],
                "f_causes": [cause for cause, _ in follow_ups],
                "f_apps": [f.app for _, f in follow_ups],
                "f_streams": [f.stream for _, f in follow_ups],
                "f_priorities": [f.priority for _, f in follow_ups],
                "f_max_attempts": [f.max_attempts for _, f in follow_ups],
                "f_delays": [float(f.delay) for _, f in follow_ups],
                "f_payloads": [f.payload.decode() for _, f in follow_ups],
            },
        ).fetchall()
        done.update(row[0] for row in rows)
    if retries:
        rows = conn.execute(
            query("retry"),
            {
                "owner": owner,
                "ids": [s.claim.id for s in retries],
                "attempts": [s.claim.attempt for s in retries],
                "delays": [float(s.outcome.delay) for s in retries if isinstance(s.outcome, Retry)],
                "errors": [s.outcome.error for s in retries if isinstance(s.outcome, Retry)],
            },
        ).fetchall()
        done.update(row[0] for row in rows)
    return done


def reap(conn: Connection, *, limit: int = 1000) -> tuple[int, list[DeadMessage]]:
    """Return expired leases to their streams; dead-letter those out of attempts.

    Each dead-lettered request gets an error response on its ``reply_to`` stream, in the same
    transaction. Returns how many were released and the messages that were dead-lettered.
    """
    released = 0
    dead: list[DeadMessage] = []
    with conn.transaction():
        for kind, count, message_id, attempts, payload, _woken in conn.execute(
            query("reap"), {"limit": limit}
        ):
            if kind == "released":
                released = count
            else:
                dead.append(DeadMessage(message_id, attempts, payload))
        # The error responses owed for dead letters commit with them.
        enqueue(
            conn,
            [
                notice
                for message in dead
                for notice in dead_letter_replies(message.payload, message.attempts, REAPED_ERROR)
            ],
        )
    return released, dead


def release_owner(conn: Connection, *, owner: str) -> int:
    """Give back every lease held by ``owner`` (drain); returns how many."""
    row = conn.execute(query("release_owner"), {"owner": owner}).fetchone()
    return int(row[0]) if row else 0


def stream_stats(conn: Connection, app: str | None = None) -> list[StreamStats]:
    """Depth, lag, leases and dead letters per stream (one app, or all)."""
    return [StreamStats(*row) for row in conn.execute(query("stream_stats"), {"app": app})]
