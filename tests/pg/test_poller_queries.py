"""The elected poller's look (``due_streams``): what it finds, and that it stays a few index
probes with a large backlog of ready, leased and delayed messages."""

from __future__ import annotations

import json
import time

import psycopg

from mesh.pg import leadership
from mesh.pg.queries import query


def fill(conn: psycopg.Connection) -> None:
    # 100k ready messages across 4 streams and 2 apps (enqueued a minute ago: stale), plus
    # 20k leased ones and 13k delayed an hour.
    conn.execute(
        """
        INSERT INTO mesh.stream_messages (app, stream, payload, lease_owner, lease_expires_at,
                                          enqueued_at, visible_at)
        SELECT CASE WHEN n % 2 = 0 THEN 'shop' ELSE 'other' END,
               'topic-' || (n % 4),
               '{}',
               CASE WHEN n % 7 = 0 THEN 'someone' END,
               CASE WHEN n % 7 = 0 THEN now() + interval '1 minute' END,
               now() - interval '1 minute',
               CASE WHEN n % 11 = 0 THEN now() + interval '1 hour'
                    ELSE now() - interval '1 minute' END
        FROM generate_series(1, 140000) AS n
        """
    )
    # And a stream of 60k timers, none due: a look must not walk them.
    conn.execute(
        """
        INSERT INTO mesh.stream_messages (app, stream, payload, visible_at)
        SELECT 'shop', 'timers', '{}', now() + n * interval '1 second'
        FROM generate_series(1, 60000) AS n
        """
    )
    conn.execute("ANALYZE mesh.stream_messages")


def test_the_look__finds_stale_streams_and_the_next_due_time(conn: psycopg.Connection) -> None:
    fill(conn)
    found = leadership.look(conn, "shop", since=time.time(), stale=2.0)
    assert sorted(s.stream for s in found.streams if s.stale) == ["topic-0", "topic-2"]
    assert found.next_due_in is not None and 0 < found.next_due_in <= 1.0  # the first timer
    assert abs(found.clock - time.time()) < 60


def test_the_look__finds_delayed_messages_that_came_due_since_the_last(
    conn: psycopg.Connection,
) -> None:
    conn.execute(
        "INSERT INTO mesh.stream_messages (app, stream, payload, enqueued_at, visible_at)"
        " VALUES ('shop', 'retried', '{}', now() - interval '10 seconds',"
        " now() - interval '1 second')"
    )
    since = time.time() - 5
    found = leadership.look(conn, "shop", since=since, stale=2.0)
    assert [(s.stream, s.stale) for s in found.streams] == [("retried", False)]
    again = leadership.look(conn, "shop", since=found.clock, stale=2.0)
    assert again.streams == ()  # already woken, and not stale yet


def test_the_look__stays_a_few_index_probes_with_a_large_backlog(
    conn: psycopg.Connection,
) -> None:
    fill(conn)
    row = conn.execute(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query("due_streams"),
        {"app": "shop", "since": time.time() - 1, "stale": 2.0},
    ).fetchone()
    assert row is not None
    plan = json.dumps(row[0])
    assert '"Seq Scan"' not in plan, plan
    top = row[0][0]["Plan"]
    blocks = sum(top.get(key, 0) for key in ("Shared Hit Blocks", "Shared Read Blocks"))
    assert blocks < 300, f"{blocks} blocks: {plan}"


def test_a_seat__is_held_once_however_often_its_holder_tries(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as one, psycopg.connect(dsn, autocommit=True) as two:
        for app in ("shop", "other", "idle-1"):  # keys of either sign
            assert leadership.try_lock(one, app, leadership.Seat.LEADER)
            assert leadership.try_lock(one, app, leadership.Seat.LEADER)  # a retry: held
            assert not leadership.try_lock(two, app, leadership.Seat.LEADER)
            leadership.unlock(one, app, leadership.Seat.LEADER)  # one unlock frees it
            assert leadership.try_lock(two, app, leadership.Seat.LEADER)
