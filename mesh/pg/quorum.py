"""Quorum storage and publishing: NOTIFY with a by-reference path, persisted throttles, the
database clock."""

from __future__ import annotations

import time

from mesh.model.ids import quorum_channel
from mesh.model.messages import NOTIFY_PAYLOAD_LIMIT
from mesh.model.quorum import (
    QuorumMessage,
    Ref,
    ThrottleKey,
    decode_quorum,
    encode_quorum,
    sign,
    validate_throttle,
)
from mesh.pg.database import Connection
from mesh.pg.listener import notify
from mesh.pg.queries import query


def publish(
    conn: Connection,
    app: str,
    message: QuorumMessage,
    *,
    guid: str = "",
    topic: str = "",
    secret: bytes | None = None,
) -> None:
    """NOTIFY ``message`` on the app's general channel (or a member's, or a topic's).

    A message whose encoding exceeds the NOTIFY limit is stored and sent as a :class:`Ref`.
    In a caller's transaction, it is sent when that commits.
    """
    signed = sign(message, secret)
    body = encode_quorum(signed)
    if len(body) > NOTIFY_PAYLOAD_LIMIT:
        row = conn.execute(
            query("store_quorum_payload"), {"app": app, "body": body.decode()}
        ).fetchone()
        assert row is not None
        body = encode_quorum(Ref(sender=message.sender, id=row[0]))
    notify(conn, quorum_channel(app, guid=guid, topic=topic), body.decode())


def resolve(conn: Connection, app: str, message: QuorumMessage) -> QuorumMessage | None:
    """The stored message a :class:`Ref` points to (None if it was pruned); others as they are."""
    if not isinstance(message, Ref):
        return message
    row = conn.execute(query("load_quorum_payload"), {"id": message.id, "app": app}).fetchone()
    return decode_quorum(row[0]) if row else None


def set_throttle(
    conn: Connection,
    app: str,
    throttle: int,
    *,
    topic: str = "",
    guid: str = "",
    notice: QuorumMessage,
    secret: bytes | None = None,
) -> None:
    """Persist a throttle and announce it, in one transaction (so nodes that start later apply
    it, and running ones hear it at the commit)."""
    validate_throttle(throttle)
    scope = {"app": app, "topic": topic, "guid": guid}
    with conn.transaction():
        conn.execute(query("clear_throttles"), scope)
        conn.execute(query("insert_throttle"), {**scope, "throttle": throttle})
        publish(conn, app, notice, guid=guid, secret=secret)


def load_throttles(conn: Connection, app: str) -> dict[ThrottleKey, int]:
    return {
        (topic, guid): throttle
        for topic, guid, throttle in conn.execute(query("load_throttles"), {"app": app})
    }


def clock_skew_ms(conn: Connection) -> float:
    """The database clock minus this host's, in ms (measured at the round trip's midpoint)."""
    before = time.time()
    row = conn.execute(query("database_clock")).fetchone()
    after = time.time()
    assert row is not None
    return (float(row[0]) - (before + after) / 2) * 1000


def prune_payloads(conn: Connection) -> int:
    return conn.execute(query("prune_quorum_payloads")).rowcount
