"""Leader elections and the elected poller's statements.

An election is a session-level advisory lock held on the node's listening connection
(:meth:`mesh.pg.listener.Listener.call`): holding it costs nothing, and Postgres releases it
the moment that connection ends, however the node died. Two locks per app: the *leader*
(poller and reaper) and its *standby*, the one node that tries the leader lock every second
so that a dead leader is replaced within about a second. Locks use the two-key form
(``pg_try_advisory_lock(int, int)``), whose key space is apart from the one-key form that
applications use most.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from mesh.model.ids import election_channel
from mesh.pg.database import Connection
from mesh.pg.queries import query

_SPACE = 0x6D657368
"""The first key of every mesh election lock ('mesh')."""


class Seat(IntEnum):
    """The locks of an app's election (the second key is the app's hash plus the seat)."""

    LEADER = 0
    STANDBY = 1


def lock_keys(app: str, seat: Seat) -> tuple[int, int]:
    """The advisory lock of ``seat`` in ``app``'s election: (space, signed 32-bit key)."""
    digest = int.from_bytes(hashlib.sha256(f"{app}/{seat.name}".encode()).digest()[:4], "big")
    return _SPACE, digest - (1 << 32) if digest >= 1 << 31 else digest


def try_lock(conn: Connection, app: str, seat: Seat) -> bool:
    """Take ``seat``'s lock for this session if it is free."""
    space, key = lock_keys(app, seat)
    row = conn.execute(query("try_lock"), {"space": space, "key": key}).fetchone()
    return bool(row and row[0])


def unlock(conn: Connection, app: str, seat: Seat) -> None:
    """Give ``seat`` up, and tell the app's followers (:func:`election_channel`)."""
    space, key = lock_keys(app, seat)
    conn.execute(query("unlock"), {"space": space, "key": key, "channel": election_channel(app)})


@dataclass(frozen=True, slots=True)
class DueStream:
    stream: str
    stale: bool
    """Its next message has waited longer than the poll's ``stale`` seconds (a missed
    NOTIFY, or every consumer busy); False: messages that were delayed became visible."""
    alone: bool
    """Messages that run alone wait there."""


@dataclass(frozen=True, slots=True)
class Look:
    """What one poll found."""

    clock: float
    """The database's now() (epoch seconds): the next poll's ``since``."""
    next_due_in: float | None
    """Seconds until the next delayed message becomes visible; None: none is delayed."""
    streams: tuple[DueStream, ...]


def look(conn: Connection, app: str, *, since: float | None, stale: float) -> Look:
    """One statement: the streams of ``app`` to wake, and when to look again."""
    row = conn.execute(
        query("due_streams"), {"app": app, "since": since, "stale": stale}
    ).fetchone()
    assert row is not None
    clock, next_due_in, streams = row
    return Look(
        clock=float(clock),
        next_due_in=None if next_due_in is None else max(0.0, float(next_due_in)),
        streams=tuple(
            DueStream(s, stale_ == "true", alone == "true") for s, stale_, alone in streams
        ),
    )


def wake(conn: Connection, app: str, streams: Sequence[DueStream]) -> None:
    """NOTIFY the channels of ``streams`` in one statement (one transaction, however many)."""
    if streams:
        conn.execute(
            query("wake_streams"),
            {
                "app": app,
                "streams": "\n".join(s.stream for s in streams),
                "payloads": "\n".join(
                    "alone" if s.alone else "stale" if s.stale else "due" for s in streams
                ),
            },
        )
