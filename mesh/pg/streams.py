"""Streams: the durable message bus on ``mesh.stream_messages``.

Each function takes a connection (from :meth:`mesh.pg.database.Database.run` or a caller's
own transaction) and performs one batched statement. Properties: batched enqueue
in the caller's transaction, delayed visibility, batched claim with lease and fencing token,
settle (ack or dead-letter) atomically with follow-up messages, heartbeat, reaper, attempts
counted at claim, NOTIFY wake-ups from a statement trigger.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from psycopg import sql

from mesh.model.ids import validate_app_id, validate_stream
from mesh.model.messages import compact_json
from mesh.model.outcomes import Ack, DeadLetter, Outcome, Outgoing, Retry, dead_letter_replies
from mesh.model.retry import DEFAULT_RETRY_POLICY
from mesh.pg.database import Connection, Cursor
from mesh.pg.queries import query

REAPED_ERROR = "claimed too many times without completing: the handler crashed or hung each time"
DEFAULT_ATTEMPTS = DEFAULT_RETRY_POLICY.maximum_attempts


@dataclass(frozen=True, slots=True)
class StreamClaim:
    """One leased message, as the ``claim`` query returns it."""

    id: int
    token: int
    """The fencing token of this lease (claims so far): settle only with this value."""
    attempt: int
    """Attempts spent, counting this one (claims refunded by the reaper do not count)."""
    max_attempts: int
    alone: bool
    """It runs on its own: its holder must claim nothing else until it is settled."""
    payload: str
    alone_waiting: bool = False
    """Messages that run on their own wait in the stream (told only when the claim looked)."""


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


def lines(values: Iterable[object]) -> str:
    """A batch column as one text parameter, split again by ``mesh.lines()`` in SQL.

    For values without newlines only: numbers and validated names (see queries.sql).
    """
    return "\n".join(map(str, values))


def json_lines(payloads: Sequence[bytes]) -> str:
    """JSON payloads joined by newlines. Compact JSON has none of its own; a payload that was
    pretty-printed by someone else is compacted first so the split stays exact."""
    joined = b"\n".join(payloads)
    if joined.count(b"\n") != max(0, len(payloads) - 1):
        joined = b"\n".join(compact_json(p) for p in payloads)
    return joined.decode()


def enqueue(conn: Connection, messages: Sequence[Outgoing]) -> list[int]:
    """Insert ``messages`` in one statement; returns their ids in order.

    Called inside a caller's transaction, the messages commit (and notify) with it.
    """
    if not messages:
        return []
    return [row[0] for row in conn.execute(query("enqueue"), enqueue_params(messages)).fetchall()]


def enqueue_params(messages: Sequence[Outgoing]) -> dict[str, str]:
    """The ``enqueue`` query's parameters (to send it without waiting for its ids, as in a
    pipeline)."""
    for app, stream in {(m.app, m.stream) for m in messages}:
        validate_app_id(app)
        validate_stream(stream)
    return {
        "apps": lines(m.app for m in messages),
        "streams": lines(m.stream for m in messages),
        "priorities": lines(m.priority for m in messages),
        "max_attempts": lines(m.max_attempts for m in messages),
        "delays": lines(m.delay for m in messages),
        "payloads": json_lines([m.payload for m in messages]),
    }


def claim(
    conn: Connection,
    *,
    app: str,
    stream: str,
    owner: str,
    limit: int,
    lease: float,
    look: bool = False,
    max_attempts: int = DEFAULT_ATTEMPTS,
) -> list[StreamClaim]:
    """Lease up to ``limit`` visible messages of ``app``/``stream`` for ``lease`` seconds
    (never one that runs alone: :func:`claim_alone`).

    ``look``: also tell (``alone_waiting``) whether messages that run alone wait; it costs
    a probe, so consumers ask now and then. ``max_attempts`` applies to messages that carry no
    retry policy.
    """
    rows = conn.execute(
        query("claim"), claim_params(app, stream, owner, limit, lease, look, max_attempts)
    ).fetchall()
    return [StreamClaim(*row) for row in rows]


def claim_alone(
    conn: Connection,
    *,
    app: str,
    stream: str,
    owner: str,
    lease: float,
    max_attempts: int = DEFAULT_ATTEMPTS,
    others: int = 0,
) -> list[StreamClaim]:
    """Lease one message that runs alone (for a consumer that holds nothing), if one waits;
    if none does, up to ``others`` other messages instead, in the same statement."""
    rows = conn.execute(
        query("claim_alone"),
        {**claim_params(app, stream, owner, 1, lease, False, max_attempts), "others": others},
    ).fetchall()
    return [StreamClaim(*row) for row in rows]


def claim_params(
    app: str,
    stream: str,
    owner: str,
    limit: int,
    lease: float,
    look: bool = False,
    max_attempts: int = DEFAULT_ATTEMPTS,
) -> dict[str, object]:
    """The ``claim`` (and ``claim_alone``) query's parameters."""
    return {
        "app": app,
        "stream": stream,
        "owner": owner,
        "limit": limit,
        "lease": lease,
        "look": look,
        "max_attempts": max_attempts,
    }


def fence_params(owner: str, claims: Sequence[StreamClaim]) -> dict[str, str]:
    """The parameters that fence a statement to ``claims`` as ``owner`` leased them: their
    ids and tokens (a lease lost and taken by another matches neither owner nor token)."""
    return {
        "owner": owner,
        "ids": lines(c.id for c in claims),
        "attempts": lines(c.token for c in claims),
    }


def extend_leases(
    conn: Connection,
    *,
    owner: str,
    claims: Sequence[StreamClaim],
    lease: float,
    details: Mapping[int, str] | None = None,
) -> tuple[set[int], set[int]]:
    """Heartbeat: extend the leases still held. Returns the ids still held, and those of them
    whose lease was extended (a row being settled or reaped right now is not waited for).
    ``details``: message id -> an activity's latest heartbeat details (JSON text), kept in
    its request for the next attempt."""
    if not claims:
        return set(), set()
    given = details or {}
    params = {
        **fence_params(owner, claims),
        "lease": lease,
        "details": [given.get(c.id) for c in claims],
    }
    rows = conn.execute(query("extend_leases"), params).fetchall()
    return {row[0] for row in rows}, {row[0] for row in rows if row[1]}


def release(conn: Connection, *, owner: str, claims: Sequence[StreamClaim]) -> set[int]:
    """Give back the leases of ``claims`` still held (fenced); returns their ids."""
    if not claims:
        return set()
    rows = conn.execute(query("release"), fence_params(owner, claims)).fetchall()
    return {row[0] for row in rows}


def settle(conn: Connection, *, owner: str, settlements: Sequence[Settlement]) -> set[int]:
    """Persist a batch of outcomes; returns the ids whose lease was still held (and settled).

    Acks, dead letters and retries each take one statement (only those present run), every
    one fenced by (id, attempt, owner) and carrying the follow-ups of what it settled. Anything
    whose lease was lost is left untouched: no ack, no effects.
    """
    return _settled_ids(_send_settlements(conn, owner, settlements))


def settle_and_claim(
    conn: Connection,
    *,
    owner: str,
    settlements: Sequence[Settlement],
    app: str,
    stream: str,
    limit: int,
    lease: float,
    max_attempts: int = DEFAULT_ATTEMPTS,
) -> tuple[set[int], list[StreamClaim]]:
    """Settle a batch and claim the next one in a single round trip and transaction.

    The statements go out together in pipeline mode and run as one implicit transaction: one
    network round trip and one commit where settle-then-claim would take two of each.
    """
    with conn.pipeline():
        cursors = _send_settlements(conn, owner, settlements)
        claimed = conn.execute(
            query("claim"),
            claim_params(app, stream, owner, limit, lease, max_attempts=max_attempts),
        )
    return _settled_ids(cursors), [StreamClaim(*row) for row in claimed.fetchall()]


def _settled_ids(cursors: list[Cursor]) -> set[int]:
    return {row[0] for cursor in cursors for row in cursor.fetchall()}


def _send_settlements(
    conn: Connection, owner: str, settlements: Sequence[Settlement]
) -> list[Cursor]:
    """Execute the settle statements; their results are read later (so they can pipeline)."""
    acks = [s for s in settlements if isinstance(s.outcome, Ack)]
    dead = [s for s in settlements if isinstance(s.outcome, DeadLetter)]
    retries = [s for s in settlements if isinstance(s.outcome, Retry)]
    cursors = []
    if acks:
        cursors.append(_execute_fenced(conn, "ack", owner, acks, {}))
    if dead:
        errors = [s.outcome.error for s in dead if isinstance(s.outcome, DeadLetter)]
        cursors.append(_execute_fenced(conn, "dead_letter", owner, dead, {"errors": errors}))
    if retries:
        extra = {
            "delays": lines(s.outcome.delay for s in retries if isinstance(s.outcome, Retry)),
            "errors": [s.outcome.error for s in retries if isinstance(s.outcome, Retry)],
            "details": [s.outcome.details for s in retries if isinstance(s.outcome, Retry)],
            "failures": [s.outcome.failure for s in retries if isinstance(s.outcome, Retry)],
        }
        cursors.append(_execute_fenced(conn, "retry", owner, retries, extra, follow_ups=False))
    return cursors


def _execute_fenced(
    conn: Connection,
    name: str,
    owner: str,
    settlements: Sequence[Settlement],
    extra: Mapping[str, object],
    *,
    follow_ups: bool = True,
) -> Cursor:
    params: dict[str, object] = {**fence_params(owner, [s.claim for s in settlements]), **extra}
    if follow_ups:
        pairs = [
            (s.claim.id, f)
            for s in settlements
            if isinstance(s.outcome, Ack | DeadLetter)
            for f in s.outcome.follow_ups
        ]
        params |= {
            "f_causes": lines(cause for cause, _ in pairs),
            "f_apps": lines(f.app for _, f in pairs),
            "f_streams": lines(f.stream for _, f in pairs),
            "f_priorities": lines(f.priority for _, f in pairs),
            "f_max_attempts": lines(f.max_attempts for _, f in pairs),
            "f_delays": lines(f.delay for _, f in pairs),
            "f_payloads": json_lines([f.payload for _, f in pairs]),
        }
    return conn.execute(query(name), params)


def reap(conn: Connection, *, limit: int = 100) -> tuple[int, list[DeadMessage]]:
    """Take back every lease of holders whose leases expired (at most ``limit`` holders):
    refunded when the holder held several (see the ``reap`` query), dead-lettered when out
    of attempts, else returned to their streams.

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


def oldest_transaction_age(conn: Connection) -> float:
    """Seconds since the oldest open transaction on this database began (vacuum's horizon)."""
    row = conn.execute(query("oldest_transaction_age")).fetchone()
    return float(row[0]) if row else 0.0


def analyze_grown_tables(conn: Connection, *, rows: int = 100) -> list[str]:
    """ANALYZE the mesh tables that hold ``rows`` or more live rows and more than twice what
    their statistics say; returns their names.

    A connection keeps the generic plans it made from the statistics of the moment until
    the table is next analyzed or vacuumed. On a new or fast-growing database those plans
    were made for tables a fraction of their size (a scan of the app's jobs per key, say),
    and autovacuum comes round only every naptime (a minute by default) with a threshold
    of 10%. Analyzing at each doubling costs a few ANALYZEs over a table's life and keeps
    the plans within 2x of the truth.
    """
    names = [row[0] for row in conn.execute(query("grown_tables"), {"rows": rows})]
    for name in names:
        conn.execute(sql.SQL("ANALYZE mesh.{}").format(sql.Identifier(name)))
    return names
