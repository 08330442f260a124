"""Which live nodes consume which streams (``mesh.stream_consumers``).

Every node says, when it starts and every :data:`INTERVAL` seconds after, which streams it
consumes, and takes its rows back when it stops. A row older than :data:`LIVE` seconds is a
node that died (or cannot reach the database); rows older than :data:`FORGET` are deleted.
``describe()`` lists a workflow's consumers, and clients warn when they start a workflow no
live node serves (Temporal's "no pollers").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mesh.pg.database import Connection
from mesh.pg.queries import query

INTERVAL = 10.0
"""Seconds between a node's refreshes of its presence."""
LIVE = 3 * INTERVAL
"""A consumer refreshed within this many seconds is live."""
FORGET = 600.0
"""Seconds after which a consumer's row is deleted."""


@dataclass(frozen=True, slots=True)
class Consumer:
    stream: str
    node: str
    """The node's id (its guid, also its connections' ``application_name`` suffix)."""
    seen_at: float
    """Wall-clock seconds of its latest refresh."""


def seen(conn: Connection, app: str, node: str, streams: Sequence[str]) -> None:
    """``node`` consumes ``streams`` now."""
    conn.execute(
        query("consumers_seen"),
        {"app": app, "node": node, "streams": list(streams), "forget": FORGET},
    )


def gone(conn: Connection, app: str, node: str) -> None:
    """``node`` stopped."""
    conn.execute(query("consumers_gone"), {"app": app, "node": node})


def consumers(conn: Connection, app: str, streams: Sequence[str]) -> list[Consumer]:
    """The live consumers of ``streams``."""
    rows = conn.execute(
        query("consumers_of"), {"app": app, "streams": list(streams), "within": LIVE}
    ).fetchall()
    return [Consumer(stream, node, seen_at) for stream, node, seen_at in rows]
