"""Quorum storage and publishing: NOTIFY with a by-reference path, persisted throttles (signed
when the mesh has a quorum secret), the secret's fingerprint, the database clock."""

from __future__ import annotations

import time
from dataclasses import dataclass

from mesh.errors import InvalidPayload, PayloadTooLarge, SigningRequired
from mesh.model.ids import observer_channel, quorum_channel
from mesh.model.limits import MAX_QUORUM_BODY_BYTES
from mesh.model.messages import NOTIFY_PAYLOAD_LIMIT, check_notify_payload
from mesh.model.quorum import (
    QuorumMessage,
    Ref,
    body_digest,
    decode_quorum,
    encode_quorum,
    key_id,
    seal,
    throttle_signature,
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
    """NOTIFY ``message`` (sealed when there is a secret) on the app's general channel, or a
    member's, or a topic's.

    A message over the NOTIFY limit is stored and sent as a :class:`Ref` carrying the stored
    body's digest. In a caller's transaction, it is sent when that commits.
    """
    body = encode_quorum(message)
    if len(seal(body, secret)) > NOTIFY_PAYLOAD_LIMIT:
        if len(body) > MAX_QUORUM_BODY_BYTES:
            raise PayloadTooLarge(
                f"quorum message of {len(body)} bytes is over the {MAX_QUORUM_BODY_BYTES}-byte "
                "limit; send a key to the data instead"
            )
        row = conn.execute(
            query("store_quorum_payload"), {"app": app, "body": body.decode()}
        ).fetchone()
        assert row is not None
        stored_id, stored_body = row
        body = encode_quorum(
            Ref(sender=message.sender, id=stored_id, digest=body_digest(stored_body))
        )
    payload = seal(body, secret).decode()
    if not guid and not topic:
        notify(conn, quorum_channel(app), payload)
        return
    # Addressed: a copy for observers too, in the same statement (so in one commit, which
    # wakes each listening connection once).
    check_notify_payload(payload)
    channels = [quorum_channel(app, guid=guid, topic=topic), observer_channel(app)]
    conn.execute(query("announce"), {"channels": channels, "payloads": [payload, payload]})


def resolve(conn: Connection, app: str, message: QuorumMessage) -> QuorumMessage | None:
    """The stored message a :class:`Ref` points to (None if it was pruned); others as they are.

    The stored body must match the reference's digest and stay within the size limit (it is
    measured in the database, so an oversized row is never loaded).
    """
    if not isinstance(message, Ref):
        return message
    row = conn.execute(
        query("load_quorum_payload"),
        {"id": message.id, "app": app, "max_bytes": MAX_QUORUM_BODY_BYTES},
    ).fetchone()
    if row is None:
        return None
    body, size = row
    if body is None:
        raise InvalidPayload(
            f"stored quorum message {message.id} is {size} bytes, over the "
            f"{MAX_QUORUM_BODY_BYTES}-byte limit"
        )
    if body_digest(body) != message.digest:
        raise InvalidPayload(f"stored quorum message {message.id} does not match its reference")
    resolved = decode_quorum(body)
    if isinstance(resolved, Ref):
        raise InvalidPayload(f"stored quorum message {message.id} is itself a reference")
    return resolved


def check_signing(conn: Connection, app: str, secret: bytes | None) -> None:
    """Refuse (:class:`SigningRequired`) to write control state for ``app`` that its nodes
    would not accept: unsigned while they sign, or signed with another secret."""
    row = conn.execute(query("quorum_key"), {"app": app}).fetchone()
    if row is None:
        return
    expected = row[0]
    if not secret:
        raise SigningRequired(
            f"app {app!r} checks signatures on its control state (its nodes run with a quorum "
            "secret), so an unsigned change would be ignored: set MESH_QUORUM_SECRET (or "
            "quorum.secret) to the mesh's secret and run the command again; nothing was written"
        )
    if key_id(secret) != expected:
        raise SigningRequired(
            f"the quorum secret given is not the one app {app!r} uses (key id "
            f"{key_id(secret)}, the nodes' is {expected}): use the mesh's secret; nothing was "
            "written"
        )


def register_key(conn: Connection, app: str, secret: bytes) -> None:
    """Record the fingerprint of the secret ``app`` signs with (see :func:`check_signing`)."""
    conn.execute(query("register_quorum_key"), {"app": app, "key_id": key_id(secret)})


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
    """Persist a throttle (signed with ``secret``) and announce it, in one transaction (so
    nodes that start later apply it, and running ones hear it at the commit).

    Raises :class:`SigningRequired`, writing nothing, when the mesh's nodes would ignore it.
    """
    validate_throttle(throttle)
    scope = {"app": app, "topic": topic, "guid": guid}
    with conn.transaction():
        check_signing(conn, app, secret)
        if secret:
            register_key(conn, app, secret)
        conn.execute(query("lock_throttles"), {"app": app})  # then read what it saw commit
        conn.execute(query("clear_throttles"), scope)
        conn.execute(
            query("insert_throttle"),
            {
                **scope,
                "throttle": throttle,
                "signature": throttle_signature(secret, app, topic, guid, throttle),
            },
        )
        publish(conn, app, notice, guid=guid, secret=secret)


@dataclass(frozen=True, slots=True)
class ThrottleRow:
    """One persisted throttle as stored, with its signature ('' when written unsigned)."""

    topic: str
    guid: str
    throttle_ms: int
    signature: str


def load_throttles(conn: Connection, app: str) -> list[ThrottleRow]:
    return [ThrottleRow(*row) for row in conn.execute(query("load_throttles"), {"app": app})]


def clock_skew_ms(conn: Connection) -> float:
    """The database clock minus this host's, in ms (measured at the round trip's midpoint)."""
    before = time.time()
    row = conn.execute(query("database_clock")).fetchone()
    after = time.time()
    assert row is not None
    return (float(row[0]) - (before + after) / 2) * 1000


def prune_payloads(conn: Connection) -> int:
    return conn.execute(query("prune_quorum_payloads")).rowcount
