"""Lease keeping for a consumer: what it holds, and the heartbeat that keeps holding it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import trio

from mesh.errors import DatabaseError
from mesh.runtime.streams import StreamClaim, Streams

log = logging.getLogger(__name__)


@dataclass(slots=True)
class InFlight:
    """A claimed message from its claim until it is settled."""

    claim: StreamClaim
    lease_from: float = 0.0
    """trio time at which the statement that last set its lease (claim or heartbeat) was
    sent: the lease is valid at least until ``lease_from + lease``."""
    batch_scope: trio.CancelScope | None = None
    finished: bool = False
    lost: bool = False


async def keep_leases(
    streams: Streams,
    stream: str,
    lease: float,
    in_flight: dict[int, InFlight],
    details: Mapping[int, str] | None = None,
) -> int:
    """Extend every lease in ``in_flight`` in one statement; returns how many were lost.
    ``details``: message id -> heartbeat details to keep in the request (activities).

    A batch whose leases are *all* lost is cancelled: nobody could record its work. A batch
    that still holds some leases runs on; its lost messages are refused at settle (fencing).
    Only entries with a ``batch_scope`` are judged: a batch transaction (the engine's, a
    workflow stream's) gets one only while it waits to retry, because while it runs, its own
    fenced ack may be what removed the rows, and cancelling it after it committed would drop
    the next batch it claimed in the same commit (left leased until the lease ran out).
    """
    held = [entry.claim for entry in in_flight.values()]
    if not held:
        return 0
    sent_at = trio.current_time()
    try:
        kept, extended = await streams.extend_leases(held, lease, details)
    except DatabaseError as error:
        log.warning("event=heartbeat_failed stream=%s error=%r", stream, str(error))
        return 0
    for claim in held:
        extended_entry = in_flight.get(claim.id)
        if claim.id in extended and extended_entry is not None and extended_entry.claim is claim:
            extended_entry.lease_from = sent_at
    newly_lost = 0
    scopes: dict[trio.CancelScope, bool] = {}  # batch scope -> every lease in it lost
    for claim in held:
        entry = in_flight.get(claim.id)
        if entry is None or entry.finished or entry.batch_scope is None:
            continue  # settled meanwhile, or its settle will tell
        lost = claim.id not in kept
        scopes[entry.batch_scope] = scopes.get(entry.batch_scope, True) and lost
        if lost and not entry.lost:
            entry.lost = True
            newly_lost += 1
            log.warning(
                "event=lease_lost stream=%s id=%s attempt=%s", stream, claim.id, claim.attempt
            )
    for scope, all_lost in scopes.items():
        if all_lost:
            scope.cancel()
    return newly_lost
