"""Eager dispatch on real Postgres: a workflow transaction leases the activity requests it
enqueues to its own node's activity worker, which runs them without claiming them; a
stream with messages waiting, or a paused one, gets its requests the ordinary way."""

from __future__ import annotations

from typing import Any

import psycopg
import trio

from mesh.model.ids import stream_channel
from mesh.model.outcomes import Outgoing
from mesh.pg.eager import EagerOffer, enqueue_leased_params, leased_claims, split_eager
from mesh.pg.queries import query
from tests.helpers import wait_until
from tests.pg.test_workflow_paths import actors, code_mesh, twice


def lends(consumer: Any) -> bool:
    """Whether the consumer would lend slots now (the loan is repaid at once)."""
    lent = consumer.lend(4)
    if lent is not None:
        consumer.slots.repay(lent[1])
    return lent is not None


def rows(dsn: str, stream: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT lease_owner IS NOT NULL, attempts, max_attempts FROM mesh.stream_messages"
            " WHERE stream = %s ORDER BY id",
            (stream,),
        ).fetchall()


def test_leased_enqueue__rows_leased_at_attempt_one__no_notify_for_them(dsn: str) -> None:
    message = Outgoing(app="a", stream="s", payload=b'{"n":1}', max_attempts=0)
    other = Outgoing(app="a", stream="s", payload=b'{"n":2}', max_attempts=7)
    later = Outgoing(app="a", stream="s", payload=b'{"n":3}', delay=60)
    offer = EagerOffer(limit=2, lease=30.0, max_attempts=4)
    normal, leased = split_eager([message, later, other, message], {("a", "s"): offer})
    assert [m.payload for m, _ in leased] == [b'{"n":1}', b'{"n":2}']
    assert normal == [later, message]  # delayed, and over the offer's limit
    with psycopg.connect(dsn, autocommit=True) as listening, psycopg.connect(dsn) as conn:
        channel = stream_channel("a", "s")
        listening.execute(f'LISTEN "{channel}"')
        claims = leased_claims(
            conn.execute(query("enqueue_leased"), enqueue_leased_params(leased, "node-1"))
        )
        conn.commit()
        conn.execute("SELECT pg_notify(%s, 'after')", (channel,))
        conn.commit()
        first = next(listening.notifies(timeout=10, stop_after=1))
    assert first.payload == "after", "the leased rows sent a NOTIFY of their own"
    (claimed,) = claims.values()
    assert [(c.token, c.attempt, c.max_attempts, c.payload) for c in claimed] == [
        (1, 1, 4, '{"n": 1}'),
        (1, 1, 7, '{"n": 2}'),
    ]
    assert rows(dsn, "s") == [(True, 1, 4), (True, 1, 7)]


async def test_activity_requests_go_to_the_local_worker_without_claims(dsn: str) -> None:
    async with code_mesh(dsn) as mesh:
        _, worker = actors(mesh)
        await wait_until(lambda: lends(worker.consumer), what="a dry stream")
        handles = [await mesh.start_workflow(twice, n, task_queue="q") for n in range(20)]
        results = [await handle.result(timeout=30) for handle in handles]
        await wait_until(lambda: worker.statistics().consumer.acked == 40, what="forty acks")
        consumer = worker.statistics().consumer
    assert results == [n + 2 for n in range(20)]
    assert consumer.claimed == 40
    # Each request was leased at its enqueue: the claims that found anything are few (a
    # request enqueued while the stream was not dry, at most). The safety poll (0.2 s
    # here) claims now and then, and finds nothing.
    found = consumer.claims - consumer.empty_claims
    assert found <= 2, f"{found} claims found requests; all 40 should have been eager"


async def test_a_notify_on_the_stream_stops_lending_until_the_next_claim(dsn: str) -> None:
    async with code_mesh(dsn) as mesh:
        _, worker = actors(mesh)
        await wait_until(lambda: lends(worker.consumer), what="a dry stream")
        before = worker.statistics().consumer.claims
        # What the listener calls when the stream's NOTIFY arrives (someone enqueued): the
        # messages may wait, so new ones must not pass them until a claim found it dry.
        mesh.node.wakeups.group("paths", "q-activity").enqueued("")
        assert not lends(worker.consumer)
        await wait_until(
            lambda: worker.statistics().consumer.claims > before, what="a claim for the notify"
        )
        await wait_until(lambda: lends(worker.consumer), what="dry again")
        assert worker.consumer.slots.reserved == 0


async def test_a_paused_activity_stream_gets_its_requests_unleased(dsn: str) -> None:
    async with code_mesh(dsn) as mesh:
        await mesh.throttle(-1, topic="q-activity")
        await wait_until(lambda: mesh.node.throttle.effective("q-activity") == -1, what="pause")
        handles = [await mesh.start_workflow(twice, n, task_queue="q") for n in range(3)]
        await wait_until(lambda: len(rows(dsn, "q-activity")) == 3, what="three requests")
        assert [leased for leased, *_ in rows(dsn, "q-activity")] == [False] * 3
        await mesh.throttle(0, topic="q-activity")
        with trio.fail_after(30):
            results = [await handle.result(timeout=30) for handle in handles]
    assert results == [2, 3, 4]
