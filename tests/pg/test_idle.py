"""What an idle node costs: its pool closes what it no longer uses, and the elected poller
wakes a stalled stream with doubling pauses (each NOTIFY costs every listener a transaction)."""

from __future__ import annotations

import itertools
from typing import Any

import psycopg
import trio

from mesh.model.ids import stream_channel, wake_channel
from mesh.pg.database import Connection
from mesh.pg.leadership import DueStream, Look
from mesh.pg.listener import Listener
from mesh.runtime.consumer import ConsumerSettings
from mesh.runtime.consumer.wakeups import DEAF_BELOW, StreamWakeups
from mesh.runtime.leadership import MAX_STALE_PAUSE, Poller
from tests import activities
from tests.helpers import wait_until
from tests.nodes import running_node


def node_connections(conn: psycopg.Connection, guid: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
        (f"%{guid}",),
    ).fetchone()
    assert row is not None
    return int(row[0])


async def test_an_idle_node__closes_the_pooled_connections_it_stopped_using(
    dsn: str, conn: psycopg.Connection
) -> None:
    settings = ConsumerSettings(poll_interval=0.5)
    async with running_node(dsn, activities.echo, settings=settings, pool_max_idle=1.0) as (
        node,
        _worker,
    ):
        async with trio.open_nursery() as nursery:  # a burst: four statements at once
            for _ in range(4):
                nursery.start_soon(node.db.run, pause)
        assert node.db.statistics().pool_size >= 3
        await wait_until(
            lambda: node_connections(conn, node.guid) <= 2,
            timeout=30,
            what="the idle node to hold 2 connections (its listener and one pooled)",
        )


def pause(conn: Connection) -> None:
    conn.execute("SELECT pg_sleep(0.3)")


def look(clock: float, *streams: DueStream) -> Look:
    return Look(clock=clock, next_due_in=None, streams=streams)


def test_the_poller__wakes_a_stalled_stream_with_doubling_pauses() -> None:
    poller = Poller(db=Any, app="a", stale=2.0)  # type: ignore[arg-type]
    stalled = DueStream("s", stale=True, alone=False)
    woken_at = [t for t in range(0, 200) if poller._choose(look(float(t), stalled))]
    gaps = [b - a for a, b in itertools.pairwise(woken_at)]
    assert gaps[:5] == [2, 4, 8, 16, 32]
    assert max(gaps) == MAX_STALE_PAUSE


def test_the_poller__wakes_due_delayed_messages_every_time_and_forgets_moved_streams() -> None:
    poller = Poller(db=Any, app="a", stale=2.0)  # type: ignore[arg-type]
    due = DueStream("d", stale=False, alone=True)
    stalled = DueStream("s", stale=True, alone=False)
    assert poller._choose(look(0.0, due, stalled)) == [due, stalled]
    assert poller._choose(look(1.0, due, stalled)) == [due]  # s waits its pause
    assert poller._choose(look(2.0)) == []  # s moved: its pauses start over
    assert poller._choose(look(3.0, stalled)) == [stalled]


async def test_a_node_with_many_rivals__stops_listening_until_the_stream_stalls(
    dsn: str, conn: psycopg.Connection
) -> None:
    listener = Listener(dsn, name="deafness")
    wakeups = StreamWakeups(listener)
    group = wakeups.group("shop", "work")
    member = group.join()

    async def listening() -> list[str]:
        rows = await listener.call(lambda c: c.execute("SELECT pg_listening_channels()").fetchall())
        return sorted(row[0] for row in rows)

    async with trio.open_nursery() as nursery:
        await nursery.start(listener.run)
        hot, wake = stream_channel("shop", "work"), wake_channel("shop", "work")
        await wait_until(lambda: {hot, wake} <= listener._listening, what="LISTEN")
        while not group.deaf:  # every claim after an enqueue's NOTIFY came back empty
            assert group.share > DEAF_BELOW / 2
            group.learn(found=False)
        await wait_until(lambda: hot not in listener._listening, what="UNLISTEN")
        assert hot not in await listening() and wake in await listening()

        member.clear()  # the wake-up of the listener's connect
        conn.execute("SELECT pg_notify(%s, '')", (hot,))  # unheard now
        conn.execute("SELECT pg_notify(%s, 'stale')", (wake,))  # the poller: it stalled
        assert await member.wait(10.0) is True
        assert not group.deaf and group.share == 1.0
        await wait_until(lambda: hot in listener._listening, what="LISTEN again")
        assert hot in await listening()
        nursery.cancel_scope.cancel()
