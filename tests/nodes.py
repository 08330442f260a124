"""Running an in-process node with worker actors for a test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import trio

from actors.maintenance import LeaderActor
from actors.worker import WorkerActor
from mesh.model.ids import new_message_id
from mesh.model.messages import ActivityRequest, ActivityResponse, decode, encode
from mesh.model.outcomes import Outgoing
from mesh.model.retry import RetryPolicy
from mesh.pg import streams
from mesh.runtime.activities import one_function
from mesh.runtime.actor import Actor
from mesh.runtime.consumer import ConsumerSettings
from mesh.runtime.node import Node

APP = "shop"
TOPIC = "work"
REPLIES = "replies"
"""Where the test requests want their responses: a plain stream, so they can be read back
(a response for the engine stream is applied to its job when the request is acked)."""


@asynccontextmanager
async def running_node(
    dsn: str,
    function: Callable[..., Any],
    *,
    settings: ConsumerSettings | None = None,
    retry: RetryPolicy | None = None,
    reap_interval: float | None = None,
    listener_check_interval: float = 5.0,
    pool_max_idle: float = 60.0,
) -> AsyncIterator[tuple[Node, WorkerActor]]:
    node = Node(
        dsn, app=APP, listener_check_interval=listener_check_interval, pool_max_idle=pool_max_idle
    )
    worker = WorkerActor(
        node,
        topic=TOPIC,
        dispatch=one_function(function),
        settings=settings or ConsumerSettings(poll_interval=0.5),
        retry=retry or RetryPolicy(),
    )
    actors: list[Actor[Any]] = [worker]
    if reap_interval is not None:
        actors.append(LeaderActor(node, reap_interval=reap_interval))
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: node.run(actors, handle_signals=False, task_status=task_status)
        )
        try:
            yield node, worker
        finally:
            node.request_stop()


def send(
    conn: psycopg.Connection, *data: Any, retry: RetryPolicy | None = None, topic: str = TOPIC
) -> list[str]:
    """Enqueue one request per ``data`` item; returns the request ids."""
    requests = [
        ActivityRequest(
            id=new_message_id(), app=APP, topic=topic, data=d, retry=retry, reply_to=REPLIES
        )
        for d in data
    ]
    streams.enqueue(
        conn,
        [
            Outgoing(
                app=APP,
                stream=topic,
                payload=encode(r),
                max_attempts=(retry or RetryPolicy()).maximum_attempts,
            )
            for r in requests
        ],
    )
    return [r.id for r in requests]


def responses(conn: psycopg.Connection) -> list[ActivityResponse]:
    rows = conn.execute(
        "SELECT payload::text FROM mesh.stream_messages WHERE app = %s AND stream = %s ORDER BY id",
        (APP, REPLIES),
    ).fetchall()
    found = [decode(row[0]) for row in rows]
    assert all(isinstance(r, ActivityResponse) for r in found)
    return found  # type: ignore[return-value]
