"""The claim query must use its index with a large backlog (cost flat as the backlog grows)."""

from __future__ import annotations

import json

import psycopg

from mesh.pg.queries import query
from mesh.pg.streams import claim_params


def _plan(conn: psycopg.Connection, app: str, stream: str) -> str:
    conn.execute("SET plan_cache_mode = force_generic_plan")
    row = conn.execute(
        "EXPLAIN (FORMAT JSON) " + query("claim"),
        claim_params(app, stream, "n1", 50, 30),
    ).fetchone()
    assert row is not None
    return json.dumps(row[0])


def test_claim__uses_the_claim_index_with_a_100k_backlog(conn: psycopg.Connection) -> None:
    # 100k ready messages across 4 streams and 2 apps, plus 20k leased ones and 20k delayed.
    conn.execute(
        """
        INSERT INTO mesh.stream_messages (app, stream, payload, lease_owner, lease_expires_at, visible_at)
        SELECT CASE WHEN n % 2 = 0 THEN 'shop' ELSE 'other' END,
               'topic-' || (n % 4),
               '{"type": "request", "id": "x", "app": "shop", "topic": "t"}',
               CASE WHEN n % 7 = 0 THEN 'someone' END,
               CASE WHEN n % 7 = 0 THEN now() + interval '1 minute' END,
               CASE WHEN n % 11 = 0 THEN now() + interval '1 hour' ELSE now() END
        FROM generate_series(1, 140000) AS n
        """
    )
    conn.execute("ANALYZE mesh.stream_messages")
    plan = _plan(conn, "shop", "topic-0")
    assert "stream_messages_claim" in plan, plan
    assert '"Seq Scan"' not in plan, plan

    # And it claims what it should: 50 visible, unleased messages of that stream.
    rows = conn.execute(query("claim"), claim_params("shop", "topic-0", "n1", 50, 30)).fetchall()
    assert len(rows) == 50


def test_job_key_probes__use_the_key_index_before_the_first_analyze(
    conn: psycopg.Connection,
) -> None:
    """On a new database (no statistics yet) the planner rated an index leading with app
    (jobs_state) as good as the (app, key) one, and each key probe scanned the app's jobs."""
    row = conn.execute(
        "SELECT reltuples FROM pg_class WHERE oid = 'mesh.jobs'::regclass"
    ).fetchone()
    assert row is not None and row[0] < 0, "the test needs a table never analyzed"
    conn.execute("SET plan_cache_mode = force_generic_plan")
    for name in ("lock_jobs", "workflow_lock_jobs", "workflow_read_jobs", "job_results"):
        params = {"app": "shop", "keys": ["a", "b"], "owner": "n", "ids": "1", "attempts": "1"}
        row = conn.execute("EXPLAIN (FORMAT JSON) " + query(name), params).fetchone()
        assert row is not None
        plan = json.dumps(row[0])
        assert "jobs_key" in plan, (name, plan)
        assert "jobs_state" not in plan, (name, plan)


def test_withdraw_timers__probes_the_timers_index_with_a_large_backlog(
    conn: psycopg.Connection,
) -> None:
    """Withdrawing a workflow's timers is one probe of its id, never a scan of the app's
    messages, before any ANALYZE and after one (100k ready messages, 20k timers)."""
    params = {"app": "shop", "rows": json.dumps([{"key": "w-7", "gid": "g", "position": None}])}

    def plan() -> str:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        row = conn.execute("EXPLAIN (FORMAT JSON) " + query("withdraw_timers"), params).fetchone()
        assert row is not None
        return json.dumps(row[0])

    before = plan()
    assert "stream_messages_timers" in before, before
    conn.execute(
        """
        INSERT INTO mesh.stream_messages (app, stream, payload, visible_at)
        SELECT 'shop', 'q',
               jsonb_build_object('type', 'resume', 'job_id', 'w-' || (n % 30000), 'gid', 'g',
                                  'activity_id', (n % 5)::text),
               CASE WHEN n % 7 = 0 THEN now() + interval '1 hour' ELSE now() END
        FROM generate_series(1, 120000) AS n
        """
    )
    conn.execute("ANALYZE mesh.stream_messages")
    after = plan()
    assert "stream_messages_timers" in after, after
    assert '"Seq Scan"' not in after, after
    count = "SELECT count(*) FROM mesh.stream_messages WHERE payload->>'job_id' = 'w-7'"
    assert conn.execute(count).fetchone() == (4,)
    rows = conn.execute(query("withdraw_timers"), params).fetchall()
    assert len(rows) == 1, "w-7's one timer (n = 7), not its three ready messages"
    assert conn.execute(count).fetchone() == (3,)


def test_withdraw_running_requests__reads_the_leased_messages_only(
    conn: psycopg.Connection,
) -> None:
    """Cancelling a workflow's running activities probes the index of leased messages (what
    workers hold), never the backlog."""
    conn.execute(
        """
        INSERT INTO mesh.stream_messages (app, stream, payload)
        SELECT 'shop', 'q-activity', jsonb_build_object('type', 'request', 'job_id', 'w-' || n)
        FROM generate_series(1, 50000) AS n
        """
    )
    conn.execute("ANALYZE mesh.stream_messages")
    conn.execute("SET plan_cache_mode = force_generic_plan")
    params = {"app": "shop", "rows": json.dumps([{"key": "w-7", "gid": "g"}])}
    row = conn.execute(
        "EXPLAIN (FORMAT JSON) " + query("withdraw_running_requests"), params
    ).fetchone()
    assert row is not None
    plan = json.dumps(row[0])
    assert "stream_messages_leases" in plan, plan
    assert '"Seq Scan"' not in plan, plan
