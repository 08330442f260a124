"""Read after the lock: under READ COMMITTED a statement that waits for a row lock (or is held
up after its snapshot was taken) sees the newest version of the rows it locks, and reads
everything else from the snapshot it started with. Each test here makes that happen on
purpose, with two connections, and checks that the decision was made from what the other
transaction committed: the statements that lock and then decide read in a statement of their
own, or check their conditions again on the rows as locked."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from mesh.manifests import load_manifest
from mesh.model.workflow import api as workflow
from mesh.pg import apps
from mesh.pg.quorum import load_throttles, set_throttle
from mesh.pg.streams import StreamClaim, enqueue, extend_leases, reap
from mesh.pg.workflow_messages import start_message
from tests.conftest import ROOT
from tests.helpers import wait_until_sync
from tests.workflow_steps import APP, QUEUE, Stepper, in_thread, waiting_for_lock


async def waits_for_go() -> Any:
    return await workflow.condition("go")


async def counts(n: int) -> Any:
    return {"n": n, "generation": workflow.info().generation}


def hold_until_waited_for(
    conn: psycopg.Connection[Any], holder: psycopg.Connection[Any], waiter: psycopg.Connection[Any]
) -> None:
    """Commit ``holder``'s transaction once ``waiter`` waits for one of its locks."""
    pid = waiter.info.backend_pid
    wait_until_sync(lambda: waiting_for_lock(conn, pid), what="the second session to wait")
    holder.commit()


def test_a_condition_made_after_waiting_for_the_lock_takes_the_signal_buffered_meanwhile(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    """The lost signal: one node buffers a signal under the workflow's lock while another,
    waiting for that lock, runs the workflow's start up to its condition. The condition
    must find the signal (it waited for ever when the signal was read from the snapshot
    taken before the lock was granted)."""
    with psycopg.connect(dsn, autocommit=True) as session, psycopg.connect(dsn) as holder:
        stepper = Stepper(session, [waits_for_go])
        stepper.start(waits_for_go, workflow_id="w")
        claims = stepper.claim_workflow_stream()
        # The signal's transaction, as it leaves the workflow before its start ran: locked,
        # with the signal waiting in the '$signals' dimension.
        row = holder.execute(
            "SELECT id FROM mesh.jobs WHERE app = %s AND key = 'w' FOR UPDATE", (APP,)
        ).fetchone()
        assert row is not None
        holder.execute(
            "INSERT INTO mesh.jobs_attributes (job_id, dimension, symbol, value) "
            """VALUES (%s, '$signals', 'go', '[{"ok": 1}]')""",
            (row[0],),
        )
        thread, outcome = in_thread(lambda: stepper.handle(claims))
        hold_until_waited_for(conn, holder, session)
        thread.join(30)
        assert outcome and not isinstance(outcome[0], BaseException), outcome
        assert stepper.job("w") == ("done", {"ok": 1})
        left = conn.execute(
            "SELECT value FROM mesh.jobs_attributes WHERE dimension = '$signals'"
        ).fetchall()
        assert left == [([],)], "the signal was consumed"


def test_a_generation_started_after_waiting_for_the_lock_runs_with_its_own_arguments(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    """Continue-as-new committed by the transaction the next start waited for: the start
    reads the new generation's arguments and number, not the snapshot's."""
    with psycopg.connect(dsn, autocommit=True) as session, psycopg.connect(dsn) as holder:
        stepper = Stepper(session, [counts])
        stepper.start(counts, 1, workflow_id="c")
        session.execute("DELETE FROM mesh.stream_messages")  # generation 0 never runs here
        enqueue(session, [start_message(APP, "c", "second-generation", QUEUE)])
        claims = stepper.claim_workflow_stream()
        row = holder.execute(
            "SELECT id FROM mesh.jobs WHERE app = %s AND key = 'c' FOR UPDATE", (APP,)
        ).fetchone()
        assert row is not None
        holder.execute("UPDATE mesh.jobs SET gid = 'second-generation' WHERE id = %s", (row[0],))
        holder.execute(
            "INSERT INTO mesh.jobs_attributes (job_id, dimension, symbol, value) "
            """VALUES (%s, '', 'generation', '{"number": 1, "started_at": 1}'), """
            "(%s, '', 'args', '[7]') ON CONFLICT (job_id, dimension, symbol) "
            "DO UPDATE SET value = EXCLUDED.value",
            (row[0], row[0]),
        )
        thread, outcome = in_thread(lambda: stepper.handle(claims))
        hold_until_waited_for(conn, holder, session)
        thread.join(30)
        assert outcome and not isinstance(outcome[0], BaseException), outcome
        assert stepper.job("c") == ("done", {"n": 7, "generation": 1})


def test_a_deploy_that_waited_for_the_same_version_finds_it(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    """Two deploys of one version at once: the second waits for the first's insert, then
    must read what the first committed (it found no row at all, and failed)."""
    manifest = load_manifest(ROOT / "config" / "orders.yaml")
    with psycopg.connect(dsn, autocommit=True) as session, psycopg.connect(dsn) as holder:
        assert apps.deploy(holder, manifest) is True  # in holder's open transaction
        thread, outcome = in_thread(lambda: apps.deploy(session, manifest))
        hold_until_waited_for(conn, holder, session)
        thread.join(30)
    assert outcome == [False], "already deployed, with the same content"


def test_a_throttle_change_that_waited_for_another_of_its_scope_replaces_it(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    """Two throttles of one topic at once: the second replaces the first (it inserted its
    row too, and failed on the primary key)."""
    from mesh.model.quorum import Throttle

    def throttle(session: psycopg.Connection[Any], ms: int) -> None:
        notice = Throttle(sender="test", throttle=ms, topic="work")
        set_throttle(session, "app", ms, topic="work", notice=notice)

    with psycopg.connect(dsn, autocommit=True) as session, psycopg.connect(dsn) as holder:
        with holder.transaction():
            # The first change, held open at its end (set_throttle's own transaction is a
            # savepoint of this one: it commits with it).
            throttle(holder, 100)
            thread, outcome = in_thread(lambda: throttle(session, 250))
            wait_until_sync(
                lambda: waiting_for_lock(conn, session.info.backend_pid),
                what="the second change to wait",
            )
        thread.join(30)
        assert outcome == [None], outcome
    assert [(r.topic, r.throttle_ms) for r in load_throttles(conn, "app")] == [("work", 250)]


# -- statements held up after their snapshot --------------------------------------------------

GATE_KEY = 727_272


@pytest.fixture
def gated(dsn: str, conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """A session whose scans of mesh.stream_messages stop at the row named by its setting
    ``mesh_test.gate_row`` while the test holds the advisory lock ``GATE_KEY``: a statement
    paused after its snapshot was taken and before it locks that row. (Row-level security
    on a role of its own: the gate is a policy that waits for the lock.)"""
    role = f"mesh_gated_{uuid.uuid4().hex[:8]}"
    name = sql.Identifier(role)
    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(name))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA mesh TO {}").format(name))
    conn.execute(sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA mesh TO {}").format(name))
    conn.execute(sql.SQL("GRANT ALL ON ALL SEQUENCES IN SCHEMA mesh TO {}").format(name))
    conn.execute(
        f"""
        CREATE FUNCTION public.mesh_test_gate(row_id bigint) RETURNS boolean
        LANGUAGE plpgsql AS $$
        BEGIN
            IF row_id = current_setting('mesh_test.gate_row', true)::bigint THEN
                PERFORM pg_advisory_lock_shared({GATE_KEY});
                PERFORM pg_advisory_unlock_shared({GATE_KEY});
            END IF;
            RETURN true;
        END $$
        """
    )
    conn.execute("ALTER TABLE mesh.stream_messages ENABLE ROW LEVEL SECURITY")
    conn.execute(
        sql.SQL(
            "CREATE POLICY gate ON mesh.stream_messages TO {} "
            "USING (public.mesh_test_gate(id)) WITH CHECK (true)"
        ).format(name)
    )
    try:
        with psycopg.connect(dsn, autocommit=True) as session:
            session.execute(sql.SQL("SET ROLE {}").format(name))
            yield session
    finally:
        conn.execute("DROP POLICY gate ON mesh.stream_messages")
        conn.execute(sql.SQL("DROP OWNED BY {}").format(name))
        conn.execute(sql.SQL("DROP ROLE {}").format(name))


def leased_message(conn: psycopg.Connection[Any], owner: str, expires_in: float) -> int:
    row = conn.execute(
        "INSERT INTO mesh.stream_messages (app, stream, payload, attempts, lease_owner, "
        "lease_expires_at) VALUES ('app', 'work', '{}', 1, %s, "
        "now() + %s * interval '1 second') RETURNING id",
        (owner, expires_in),
    ).fetchone()
    assert row is not None
    return int(row[0])


def paused_at(
    conn: psycopg.Connection[Any], gated: psycopg.Connection[Any], row_id: int, statement: Any
) -> tuple[Any, list[Any]]:
    """Start ``statement`` in the gated session, held up when it reaches ``row_id``."""
    gated.execute("SELECT set_config('mesh_test.gate_row', %s, false)", (str(row_id),))
    conn.execute("SELECT pg_advisory_lock(%s)", (GATE_KEY,))
    thread, outcome = in_thread(statement)
    pid = gated.info.backend_pid
    wait_until_sync(lambda: waiting_for_lock(conn, pid), what="the statement at the gate")
    return thread, outcome


def test_the_reaper_leaves_a_lease_its_holder_extended_after_the_reap_began(
    conn: psycopg.Connection[Any], gated: psycopg.Connection[Any]
) -> None:
    """The reaper saw an expired lease; before it locked the row, the holder's heartbeat
    extended it. The holder is alive: the lease stays with it."""
    message = leased_message(conn, "slow-node", expires_in=-1)
    thread, outcome = paused_at(conn, gated, message, lambda: reap(gated))
    claim = StreamClaim(message, 1, 1, 3, False, "{}")
    assert extend_leases(conn, owner="slow-node", claims=[claim], lease=30) == (
        {message},
        {message},
    )
    conn.execute("SELECT pg_advisory_unlock(%s)", (GATE_KEY,))
    thread.join(30)
    assert outcome == [(0, [])], "nothing reaped"
    row = conn.execute(
        "SELECT lease_owner, lease_expires_at > now() + interval '20 seconds' "
        "FROM mesh.stream_messages WHERE id = %s",
        (message,),
    ).fetchone()
    assert row == ("slow-node", True)


def test_the_reaper_still_takes_a_lease_that_was_not_extended(
    conn: psycopg.Connection[Any], gated: psycopg.Connection[Any]
) -> None:
    """The same pause, and nobody extends the lease: it is reaped (the recheck does not
    make the reaper miss what it should take)."""
    message = leased_message(conn, "dead-node", expires_in=-1)
    thread, outcome = paused_at(conn, gated, message, lambda: reap(gated))
    conn.execute("SELECT pg_advisory_unlock(%s)", (GATE_KEY,))
    thread.join(30)
    assert outcome == [(1, [])]
    row = conn.execute(
        "SELECT lease_owner FROM mesh.stream_messages WHERE id = %s", (message,)
    ).fetchone()
    assert row == (None,)


def test_a_heartbeat_does_not_extend_a_message_claimed_again_under_a_new_token(
    conn: psycopg.Connection[Any], gated: psycopg.Connection[Any]
) -> None:
    """The heartbeat saw the message held at token 1; before it locked the row, the message
    was reaped and claimed again by the same node (token 2). Token 1's lease is gone: it is
    not reported extended."""
    message = leased_message(conn, "node", expires_in=5)
    claim = StreamClaim(message, 1, 1, 3, False, "{}")
    thread, outcome = paused_at(
        conn,
        gated,
        message,
        lambda: extend_leases(gated, owner="node", claims=[claim], lease=30),
    )
    conn.execute("UPDATE mesh.stream_messages SET attempts = 2 WHERE id = %s", (message,))
    conn.execute("SELECT pg_advisory_unlock(%s)", (GATE_KEY,))
    thread.join(30)
    assert outcome == [({message}, set())], "held as the snapshot saw it, not extended"
    row = conn.execute(
        "SELECT lease_expires_at < now() + interval '10 seconds' FROM mesh.stream_messages "
        "WHERE id = %s",
        (message,),
    ).fetchone()
    assert row == (True,)
