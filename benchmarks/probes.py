"""Wake-up latency probes for ``mesh bench idle``: how long a message sent into an idle mesh
takes to be handled, when its NOTIFY arrives and when it was lost.

A probe is an activity request to one of the idle nodes' topics with ``reply_to`` a stream
of the bench's own; this process LISTENs on that stream's channel, so the clock runs from
the enqueue's commit to the NOTIFY of the reply (the worker's claim, handling and settle in
between). A *lost* probe is inserted with triggers off (``session_replication_role =
replica``, which needs a superuser), so no NOTIFY is sent for it: the elected poller (or, at
worst, the nodes' safety poll) must find it.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks import db as probes
from mesh.errors import DatabaseError
from mesh.model.ids import new_message_id, stream_channel
from mesh.model.messages import ActivityRequest, encode
from mesh.model.outcomes import Outgoing
from mesh.pg import streams
from mesh.pg.database import Connection, connect_sync

REPLIES = "bench.probe-replies"


def probe_latency(
    dsn: str, app: str, topic: str, *, probes_sent: int, lost: int, warm_up: int
) -> dict[str, Any]:
    """Send ``lost`` messages whose NOTIFY is suppressed, then ``warm_up`` + ``probes_sent``
    with theirs, one at a time. The lost ones go first, into a mesh idle since the
    measurement: a consumer still claiming after an earlier probe's NOTIFY would find them
    early. The first ``warm_up`` are reported apart: while they run, the nodes learn how
    many of them answer each NOTIFY (:mod:`mesh.runtime.consumer.wakeups`)."""
    with connect_sync(dsn, "mesh-bench-probe") as listen, connect_sync(dsn, "mesh-bench") as conn:
        probes.listen(listen, stream_channel(app, REPLIES))
        try:
            missed = [_one(conn, listen, app, topic, quiet=True) for _ in range(lost)]
        except DatabaseError:  # not a superuser: triggers cannot be switched off
            missed = []
        first = [_one(conn, listen, app, topic, quiet=False) for _ in range(warm_up)]
        woken = [_one(conn, listen, app, topic, quiet=False) for _ in range(probes_sent)]
        probes.forget_stream(conn, app, REPLIES)
    return {
        "notify_latency_ms": _summary([1000 * s for s in woken]),
        "first_messages_latency_ms": _summary([1000 * s for s in first]) if first else None,
        "lost_notify_latency_s": _summary(missed) if missed else None,
        "probes": {"notified": probes_sent, "first": warm_up, "notify_lost": len(missed)},
    }


def _one(conn: Connection, listen: Connection, app: str, topic: str, *, quiet: bool) -> float:
    request = ActivityRequest(
        id=new_message_id(), app=app, topic=topic, data={"probe": True}, reply_to=REPLIES
    )
    message = Outgoing(app=app, stream=topic, payload=encode(request), max_attempts=1)
    sent = time.perf_counter()
    if quiet:
        probes.enqueue_quietly(conn, [message])
    else:
        streams.enqueue(conn, [message])
    if not probes.wait_for_notify(listen, 120.0):
        raise TimeoutError(f"probe on {topic!r} not handled within 120 s")
    return time.perf_counter() - sent


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 4),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 4),
        "max": round(ordered[-1], 4),
    }
