"""Wake-ups: NOTIFY wakes idle consumers, polling covers for a broken NOTIFY, and the
listener and the pool survive their backends being killed."""

from __future__ import annotations

import psycopg
import pytest

from mesh.errors import PayloadTooLarge
from mesh.pg.listener import notify
from mesh.runtime.consumer import ConsumerSettings
from tests import activities
from tests.helpers import wait_until
from tests.nodes import responses, running_node, send

# Far longer than any wait below: a delivery within the wait can only come from a NOTIFY.
NO_POLLING = ConsumerSettings(poll_interval=60.0)


async def test_notify__wakes_an_idle_consumer(dsn: str, conn: psycopg.Connection) -> None:
    async with running_node(dsn, activities.echo, settings=NO_POLLING) as (_, worker):
        await wait_until(
            lambda: worker.consumer.counters.empty_claims >= 1, what="the consumer to go idle"
        )
        claims_before = worker.consumer.counters.claims
        send(conn, {"n": 1})
        await wait_until(
            lambda: len(responses(conn)) == 1, timeout=10, what="a NOTIFY-driven delivery"
        )
        assert (
            worker.consumer.counters.claims == claims_before + 1
            or worker.consumer.counters.claims > claims_before
        )


async def test_polling__delivers_when_notify_is_broken(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("ALTER TABLE mesh.stream_messages DISABLE TRIGGER stream_messages_notify")
    async with running_node(dsn, activities.echo, settings=ConsumerSettings(poll_interval=0.3)) as (
        node,
        worker,
    ):
        await wait_until(
            lambda: worker.consumer.counters.empty_claims >= 1, what="the consumer to go idle"
        )
        heard_before = node.listener.received
        send(conn, {"n": 1}, {"n": 2})
        await wait_until(
            lambda: len(responses(conn)) == 2, timeout=10, what="a poll-driven delivery"
        )
        assert node.listener.received == heard_before, "no notification should have arrived"


async def test_listener__survives_its_backend_being_terminated(
    dsn: str, conn: psycopg.Connection
) -> None:
    async with running_node(
        dsn, activities.echo, settings=NO_POLLING, listener_check_interval=1.0
    ) as (node, worker):
        await wait_until(
            lambda: worker.consumer.counters.empty_claims >= 1, what="the consumer to go idle"
        )
        old_pid = node.listener.backend_pid
        assert conn.execute("SELECT pg_terminate_backend(%s)", (old_pid,)).fetchone() == (True,)
        # Sent while the listener may be down: the catch-up claim after reconnecting finds it.
        send(conn, {"n": 1})
        await wait_until(
            lambda: node.listener.connects == 2 and node.listener.healthy,
            timeout=15,
            what="the listener to reconnect",
        )
        assert node.listener.backend_pid != old_pid
        await wait_until(
            lambda: len(responses(conn)) == 1, timeout=10, what="the catch-up delivery"
        )
        send(conn, {"n": 2})
        await wait_until(
            lambda: len(responses(conn)) == 2,
            timeout=10,
            what="a NOTIFY delivery on the new connection",
        )


async def test_pool__survives_its_backends_being_terminated(
    dsn: str, conn: psycopg.Connection
) -> None:
    async with running_node(dsn, activities.echo, settings=ConsumerSettings(poll_interval=0.2)) as (
        node,
        worker,
    ):
        send(conn, {"n": 1})
        await wait_until(lambda: len(responses(conn)) == 1, what="the first delivery")
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE %s",
            (f"mesh:%{node.guid}",),
        ).fetchone()
        assert killed is not None and killed[0] >= 1
        send(conn, {"n": 2}, {"n": 3})
        await wait_until(
            lambda: len(responses(conn)) == 3, timeout=15, what="deliveries after the outage"
        )
        assert worker.restarts == 0


def test_notify__refuses_an_oversized_payload_and_sends_nothing(conn: psycopg.Connection) -> None:
    conn.execute("LISTEN probe")
    with pytest.raises(PayloadTooLarge, match=r"Store large data in a table"):
        notify(conn, "probe", "ü" * 5000)
    notify(conn, "probe", "small")
    received = list(conn.notifies(timeout=1.0, stop_after=1))
    assert [n.payload for n in received] == ["small"]


async def test_large_stream_payloads__travel_in_the_table_not_the_notification(
    dsn: str, conn: psycopg.Connection
) -> None:
    big = {"blob": "x" * 200_000}
    async with running_node(dsn, activities.echo, settings=NO_POLLING) as (_, worker):
        await wait_until(
            lambda: worker.consumer.counters.empty_claims >= 1, what="the consumer to go idle"
        )
        send(conn, big)
        await wait_until(lambda: len(responses(conn)) == 1, timeout=10, what="the large message")
    (response,) = responses(conn)
    assert response.data == {"echo": big}
