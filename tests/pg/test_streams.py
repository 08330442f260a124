"""Stream properties against real Postgres: claims, leases, fencing, settling, reaping."""

from __future__ import annotations

import psycopg
import pytest
import trio

from mesh.model.ids import ENGINE_STREAM
from mesh.model.messages import ActivityRequest, ActivityResponse, decode, encode
from mesh.model.outcomes import Ack, DeadLetter, Outgoing, Retry
from mesh.pg import stream_admin, streams
from mesh.pg.database import Database
from mesh.pg.streams import Settlement
from tests.helpers import wait_until_sync

APP = "shop"


def request(
    n: int, topic: str = "inventory.check", max_attempts: int = 3, delay: float = 0.0
) -> Outgoing:
    message = ActivityRequest(id=f"r{n}", app=APP, topic=topic, data={"n": n})
    return Outgoing(
        app=APP, stream=topic, payload=encode(message), max_attempts=max_attempts, delay=delay
    )


def response_for(claim: streams.StreamClaim) -> Outgoing:
    message = decode(claim.payload)
    assert isinstance(message, ActivityRequest)
    reply = ActivityResponse(
        request_id=message.id, app=APP, topic=message.topic, status="success", code=200
    )
    return Outgoing(app=APP, stream=ENGINE_STREAM, payload=encode(reply), priority=2)


def count(conn: psycopg.Connection, where: str = "true") -> int:
    row = conn.execute(f"SELECT count(*) FROM mesh.stream_messages WHERE {where}").fetchone()
    assert row is not None
    return int(row[0])


def test_enqueue__commits_with_the_callers_transaction(conn: psycopg.Connection) -> None:
    with pytest.raises(RuntimeError), conn.transaction():
        streams.enqueue(conn, [request(1), request(2)])
        raise RuntimeError("the caller's work failed")
    assert count(conn) == 0
    with conn.transaction():
        ids = streams.enqueue(conn, [request(1), request(2)])
    assert len(ids) == 2 and count(conn) == 2


def test_claim__respects_delayed_visibility_and_priority(conn: psycopg.Connection) -> None:
    streams.enqueue(conn, [request(1, delay=60), request(2)])
    high = ActivityRequest(id="urgent", app=APP, topic="inventory.check")
    streams.enqueue(
        conn, [Outgoing(app=APP, stream="inventory.check", payload=encode(high), priority=5)]
    )
    claims = streams.claim(conn, app=APP, stream="inventory.check", owner="n1", limit=10, lease=30)
    assert [decode(c.payload).id for c in claims] == ["urgent", "r2"]  # type: ignore[union-attr]
    assert all(c.attempt == 1 for c in claims)


def test_claim__only_its_own_app_and_stream(conn: psycopg.Connection) -> None:
    other = ActivityRequest(id="x", app="other", topic="inventory.check")
    streams.enqueue(
        conn,
        [
            request(1, topic="inventory.reserve"),
            Outgoing(app="other", stream="inventory.check", payload=encode(other)),
        ],
    )
    assert (
        streams.claim(conn, app=APP, stream="inventory.check", owner="n1", limit=10, lease=30) == []
    )


async def test_concurrent_consumers__never_claim_the_same_message(
    db: Database, conn: psycopg.Connection
) -> None:
    total = 3000
    for start in range(0, total, 500):
        streams.enqueue(conn, [request(n) for n in range(start, start + 500)])
    seen: list[int] = []

    async def consume(owner: str) -> None:
        while True:
            claims = await db.run(
                streams.claim, app=APP, stream="inventory.check", owner=owner, limit=7, lease=30
            )
            if not claims:
                return
            seen.extend(c.id for c in claims)
            done = await db.run(
                streams.settle, owner=owner, settlements=[Settlement(c, Ack()) for c in claims]
            )
            assert done == {c.id for c in claims}

    async with trio.open_nursery() as nursery:
        for n in range(8):
            nursery.start_soon(consume, f"consumer-{n}")
    assert len(seen) == total
    assert len(set(seen)) == total, "a message was claimed by two consumers"
    assert count(conn) == 0


def test_expired_lease__is_reclaimed_and_the_late_ack_refused(conn: psycopg.Connection) -> None:
    streams.enqueue(conn, [request(1)])
    (first,) = streams.claim(
        conn, app=APP, stream="inventory.check", owner="slow-node", limit=1, lease=0.3
    )
    # The holder never heartbeats: wait until the database clock says the lease is over.
    wait_until_sync(
        lambda: (
            conn.execute("SELECT lease_expires_at < now() FROM mesh.stream_messages").fetchone()
            == (True,)
        ),
        timeout=10,
        what="the lease to expire",
    )
    released, dead = streams.reap(conn)
    assert (released, dead) == (1, [])
    (second,) = streams.claim(
        conn, app=APP, stream="inventory.check", owner="fast-node", limit=1, lease=30
    )
    assert second.id == first.id and second.attempt == first.attempt + 1

    late = streams.settle(
        conn,
        owner="slow-node",
        settlements=[Settlement(first, Ack(follow_ups=(response_for(first),)))],
    )
    assert late == set(), "the old holder's ack must be refused"
    assert count(conn, f"stream = '{ENGINE_STREAM}'") == 0, "a refused ack must have no effects"
    assert count(conn, "lease_owner = 'fast-node'") == 1

    done = streams.settle(
        conn,
        owner="fast-node",
        settlements=[Settlement(second, Ack(follow_ups=(response_for(second),)))],
    )
    assert done == {second.id}
    assert count(conn, f"stream = '{ENGINE_STREAM}'") == 1
    assert count(conn, "stream = 'inventory.check'") == 0


def test_settle__follow_ups_only_for_what_was_settled(conn: psycopg.Connection) -> None:
    streams.enqueue(conn, [request(1), request(2)])
    a, b = streams.claim(conn, app=APP, stream="inventory.check", owner="n1", limit=2, lease=30)
    stale_b = streams.StreamClaim(
        b.id, b.token - 1, b.attempt - 1, b.max_attempts, False, b.payload
    )
    done = streams.settle(
        conn,
        owner="n1",
        settlements=[
            Settlement(a, Ack(follow_ups=(response_for(a),))),
            Settlement(stale_b, Ack(follow_ups=(response_for(b),))),
        ],
    )
    assert done == {a.id}
    assert count(conn, f"stream = '{ENGINE_STREAM}'") == 1


def test_retry__releases_with_delay_and_keeps_the_error(conn: psycopg.Connection) -> None:
    streams.enqueue(conn, [request(1)])
    (claim,) = streams.claim(conn, app=APP, stream="inventory.check", owner="n1", limit=1, lease=30)
    assert streams.settle(
        conn, owner="n1", settlements=[Settlement(claim, Retry(delay=100, error="boom"))]
    ) == {claim.id}
    row = conn.execute(
        "SELECT lease_owner, last_error, extract(epoch FROM visible_at - now()) FROM mesh.stream_messages"
    ).fetchone()
    assert row is not None
    assert row[0] is None and row[1] == "boom" and 98 < float(row[2]) <= 100
    assert (
        streams.claim(conn, app=APP, stream="inventory.check", owner="n1", limit=1, lease=30) == []
    )


def test_dead_letter__moves_the_message_with_its_error_and_follow_ups(
    conn: psycopg.Connection,
) -> None:
    streams.enqueue(conn, [request(1)])
    (claim,) = streams.claim(conn, app=APP, stream="inventory.check", owner="n1", limit=1, lease=30)
    done = streams.settle(
        conn,
        owner="n1",
        settlements=[
            Settlement(claim, DeadLetter(error="ValueError: no", follow_ups=(response_for(claim),)))
        ],
    )
    assert done == {claim.id}
    row = conn.execute(
        "SELECT id, attempts, last_error, last_owner, payload->>'id' FROM mesh.dead_letters"
    ).fetchone()
    assert row == (claim.id, 1, "ValueError: no", "n1", "r1")
    assert count(conn, "stream = 'inventory.check'") == 0
    assert count(conn, f"stream = '{ENGINE_STREAM}'") == 1


def test_reap__dead_letters_a_message_out_of_attempts_and_reports_it(
    conn: psycopg.Connection,
) -> None:
    streams.enqueue(conn, [request(1, max_attempts=2)])
    for owner in ("crashing-1", "crashing-2"):
        (claim,) = streams.claim(
            conn, app=APP, stream="inventory.check", owner=owner, limit=1, lease=30
        )
        conn.execute(
            "UPDATE mesh.stream_messages SET lease_expires_at = now() - interval '1 second'"
        )
        released, dead = streams.reap(conn)
    assert claim.attempt == 2
    assert released == 0 and [d.id for d in dead] == [claim.id]
    row = conn.execute("SELECT attempts, last_owner, last_error FROM mesh.dead_letters").fetchone()
    assert (
        row is not None and row[0] == 2 and row[1] == "crashing-2" and "claimed 2 times" in row[2]
    )
    (reply,) = (
        conn.execute(
            "SELECT payload::text FROM mesh.stream_messages WHERE stream = 'engine'"
        ).fetchone()
        or ()
    )
    response = decode(reply)
    assert (
        isinstance(response, ActivityResponse)
        and response.status == "error"
        and response.request_id == "r1"
    )


def test_extend_leases__only_for_the_holder_at_its_attempt(conn: psycopg.Connection) -> None:
    streams.enqueue(conn, [request(1), request(2)])
    a, b = streams.claim(conn, app=APP, stream="inventory.check", owner="n1", limit=2, lease=1)
    conn.execute("UPDATE mesh.stream_messages SET lease_owner = 'thief' WHERE id = %s", (b.id,))
    assert streams.extend_leases(conn, owner="n1", claims=[a, b], lease=60) == ({a.id}, {a.id})
    row = conn.execute(
        "SELECT extract(epoch FROM lease_expires_at - now()) FROM mesh.stream_messages WHERE id = %s",
        (a.id,),
    ).fetchone()
    assert row is not None and float(row[0]) > 55


def test_release_owner__gives_back_every_lease(conn: psycopg.Connection) -> None:
    streams.enqueue(conn, [request(n) for n in range(5)])
    streams.claim(conn, app=APP, stream="inventory.check", owner="n1", limit=3, lease=30)
    assert streams.release_owner(conn, owner="n1") == 3
    assert count(conn, "lease_owner IS NOT NULL") == 0


def test_stream_stats__depth_lag_leases_dead_letters(conn: psycopg.Connection) -> None:
    streams.enqueue(conn, [request(n) for n in range(4)] + [request(9, delay=60)])
    (claim,) = streams.claim(conn, app=APP, stream="inventory.check", owner="n1", limit=1, lease=30)
    streams.settle(conn, owner="n1", settlements=[Settlement(claim, DeadLetter(error="x"))])
    streams.claim(conn, app=APP, stream="inventory.check", owner="n1", limit=1, lease=30)
    (stats,) = streams.stream_stats(conn, APP)
    assert (stats.ready, stats.delayed, stats.leased, stats.dead_lettered, stats.depth) == (
        2,
        1,
        1,
        1,
        4,
    )
    assert stats.lag_seconds >= 0
    assert streams.stream_stats(conn, "nobody") == []


def test_enqueue__refuses_unsafe_identifiers_before_touching_the_database(
    conn: psycopg.Connection,
) -> None:
    from mesh.errors import InvalidIdentifier

    with pytest.raises(InvalidIdentifier):
        streams.enqueue(
            conn,
            [Outgoing(app="x'; drop table mesh.stream_messages; --", stream="t", payload=b"{}")],
        )
    assert count(conn) == 0


def test_dead_letters__listed_and_requeued_with_fresh_attempts(conn: psycopg.Connection) -> None:
    streams.enqueue(conn, [request(1), request(2)])
    claims = streams.claim(conn, app=APP, stream="inventory.check", owner="n1", limit=2, lease=30)
    streams.settle(
        conn,
        owner="n1",
        settlements=[Settlement(c, DeadLetter(error=f"boom {c.id}")) for c in claims],
    )
    dead = stream_admin.list_dead_letters(conn, APP)
    assert [d.last_error for d in dead] == [f"boom {c.id}" for c in claims]
    assert stream_admin.list_dead_letters(conn, APP, "inventory.reserve") == []

    assert stream_admin.requeue_dead_letters(conn, APP, ids=[claims[0].id]) == [claims[0].id]
    assert [d.id for d in stream_admin.list_dead_letters(conn, APP)] == [claims[1].id]
    (again,) = streams.claim(conn, app=APP, stream="inventory.check", owner="n2", limit=5, lease=30)
    assert again.attempt == 1 and again.id != claims[0].id
    assert decode(again.payload) == decode(claims[0].payload)
    assert stream_admin.requeue_dead_letters(conn, APP) == [claims[1].id]
    assert stream_admin.list_dead_letters(conn, APP) == []


def test_tables_filled_before_their_first_analyze_are_analyzed_once(
    conn: psycopg.Connection,
) -> None:
    # A new database: plans cached while its tables look empty last until the first ANALYZE.
    streams.enqueue(conn, [request(n) for n in range(20)])
    analyzed: list[str] = []

    def first_statistics() -> bool:
        analyzed.extend(streams.analyze_grown_tables(conn, rows=20))
        return bool(analyzed)

    wait_until_sync(first_statistics, what="the table's row count in the statistics")
    assert analyzed == ["stream_messages"]  # the empty tables are left to autovacuum
    assert streams.analyze_grown_tables(conn, rows=20) == []  # once per table
    row = conn.execute(
        "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
        "WHERE schemaname = 'mesh' AND relname = 'stream_messages'"
    ).fetchone()
    assert row == (True,)
    # Past twice what the statistics know, the table is analyzed again.
    streams.enqueue(conn, [request(n) for n in range(20, 50)])
    again: list[str] = []

    def grown() -> bool:
        again.extend(streams.analyze_grown_tables(conn, rows=20))
        return bool(again)

    wait_until_sync(grown, what="the grown table's row count in the statistics")
    assert again == ["stream_messages"]


def test_heartbeat__never_waits_for_a_row_a_settle_holds(
    dsn: str, conn: psycopg.Connection
) -> None:
    """A settle that locks b then a, against a heartbeat of a and b, used to deadlock."""
    streams.enqueue(conn, [request(1), request(2)])
    a, b = streams.claim(conn, app=APP, stream="inventory.check", owner="n1", limit=2, lease=30)
    with psycopg.connect(dsn) as settling:  # one transaction: a batch being settled
        assert streams.settle(settling, owner="n1", settlements=[Settlement(b, Ack())]) == {b.id}
        with psycopg.connect(dsn, autocommit=True) as beating:
            beating.execute("SET lock_timeout = '5s'")  # waiting at all fails the test
            held, extended = streams.extend_leases(beating, owner="n1", claims=[a, b], lease=60)
        assert held == {a.id, b.id}, "b is still ours until that settle commits"
        assert extended == {a.id}, "b is being settled: skipped, not waited for"
        # The settle goes on to a row the heartbeat touched: nothing holds it.
        assert streams.settle(settling, owner="n1", settlements=[Settlement(a, Ack())]) == {a.id}
        settling.commit()
    assert count(conn, "true") == 0


def test_reap__a_dead_holder_of_several_gets_its_claims_refunded_then_alone(
    conn: psycopg.Connection,
) -> None:
    streams.enqueue(conn, [request(n) for n in range(3)])
    first = streams.claim(conn, app=APP, stream="inventory.check", owner="dies", limit=3, lease=30)
    expire = (
        "UPDATE mesh.stream_messages SET lease_expires_at = now() - interval '1 second' "
        "WHERE lease_owner IS NOT NULL"
    )
    conn.execute(expire + " AND id = %s", (first[0].id,))  # one lease is enough to tell
    assert streams.reap(conn) == (3, [])
    rows = conn.execute(
        "SELECT attempts, refunds, lease_owner FROM mesh.stream_messages ORDER BY id"
    ).fetchall()
    assert rows == [(1, 1, None)] * 3, "taken back together, and not counted as attempts"
    again = streams.claim(conn, app=APP, stream="inventory.check", owner="dies", limit=3, lease=30)
    assert [c.attempt for c in again] == [1, 1, 1] and not any(c.alone for c in again)
    conn.execute(expire)
    streams.reap(conn)
    # Twice refunded: each runs alone now, only for a consumer holding nothing.
    busy = streams.claim(conn, app=APP, stream="inventory.check", owner="n2", limit=3, lease=30)
    assert busy == []
    streams.enqueue(conn, [request(9)])
    looked = streams.claim(
        conn, app=APP, stream="inventory.check", owner="n3", limit=3, lease=30, look=True
    )
    assert len(looked) == 1 and looked[0].alone_waiting, "a claim that looks is told"
    streams.enqueue(conn, [request(10)])
    alone = streams.claim_alone(
        conn, app=APP, stream="inventory.check", owner="n2", lease=30, others=5
    )
    assert len(alone) == 1 and alone[0].alone, "one that runs alone, and nothing along"
    assert alone[0].attempt == 1 and alone[0].token == 3
    conn.execute(expire)
    streams.reap(conn)  # it ran alone: this death counts
    row = conn.execute(
        "SELECT attempts - refunds, refunds FROM mesh.stream_messages WHERE id = %s",
        (alone[0].id,),
    ).fetchone()
    assert row == (1, 2)


def test_claim_alone__claims_others_in_the_same_statement_when_none_runs_alone(
    conn: psycopg.Connection,
) -> None:
    streams.enqueue(conn, [request(n) for n in range(4)])
    claims = streams.claim_alone(
        conn, app=APP, stream="inventory.check", owner="n1", lease=30, others=3
    )
    assert len(claims) == 3 and not any(c.alone for c in claims)
    assert streams.claim_alone(conn, app=APP, stream="inventory.check", owner="n1", lease=30) == []
