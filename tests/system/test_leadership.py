"""The elected poller and reaper, with real nodes started through ``mesh run``:
one leader per app, a standby that takes over within seconds of a SIGKILL, delayed messages
due meanwhile still run, and a message whose NOTIFY was lost is found by the poller."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from mesh.model.ids import new_message_id
from mesh.model.messages import ActivityRequest, encode
from mesh.model.outcomes import Outgoing
from mesh.pg import streams
from mesh.pg.leadership import Seat, lock_keys
from tests.helpers import NodeProcess, wait_until_sync, write_config
from tests.nodes import APP, REPLIES, TOPIC, responses

TAKEOVER_BOUND = 3.0
"""Seconds (README): the standby tries the leader's seat every second."""
LOST_NOTIFY_BOUND = 5.0
"""Seconds (README): 2 s unclaimed makes a stream stale; the poller looks every second."""


def config(tmp_path: Path) -> Path:
    # The default safety poll (60 s, jittered down to 30 s): anything sooner is the poller's.
    return write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
node:
  roles: [quorum, worker]
workers:
  - topic: {TOPIC}
    function: tests.activities:echo
""",
    )


def request(delay: float = 0.0) -> Outgoing:
    message = ActivityRequest(
        id=new_message_id(), app=APP, topic=TOPIC, data={"n": 1}, reply_to=REPLIES
    )
    return Outgoing(app=APP, stream=TOPIC, payload=encode(message), delay=delay)


def seat_holders(conn: psycopg.Connection, seat: Seat) -> int:
    space, key = lock_keys(APP, seat)
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = %s AND objid = %s AND objsubid = 2",
        (space, key & 0xFFFFFFFF),
    ).fetchone()
    assert row is not None
    return int(row[0])


def role_of(node: NodeProcess) -> str | None:
    """The last seat the node logged taking (leader or standby)."""
    found = [line for line in node.log().splitlines() if "event=elected" in line]
    return found[-1].split("role=")[1].split()[0] if found else None


def test_sigkill_of_the_leader__the_standby_takes_over_and_due_messages_run(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    path = config(tmp_path)
    nodes = [NodeProcess(path, dsn, log=tmp_path / f"node{n}.log") for n in range(3)]
    try:
        wait_until_sync(
            lambda: sorted(filter(None, map(role_of, nodes))) == ["leader", "standby"],
            what="a leader and a standby",
        )
        assert (seat_holders(conn, Seat.LEADER), seat_holders(conn, Seat.STANDBY)) == (1, 1)
        leader = next(node for node in nodes if role_of(node) == "leader")
        standby = next(node for node in nodes if role_of(node) == "standby")
        streams.enqueue(conn, [request(delay=2.0) for _ in range(5)])  # due while no leader
        killed_at = time.monotonic()
        leader.kill()
        wait_until_sync(lambda: role_of(standby) == "leader", what="the standby to lead")
        took_over = time.monotonic() - killed_at
        assert took_over < TAKEOVER_BOUND, f"takeover took {took_over:.1f}s"
        wait_until_sync(lambda: len(responses(conn)) == 5, what="the delayed messages")
        handled = time.monotonic() - killed_at
        assert handled < 2.0 + TAKEOVER_BOUND + 1.5, f"handled after {handled:.1f}s"
        # The standby said it gave its seat up: the third node takes it at once.
        third = next(node for node in nodes if node not in (leader, standby))
        wait_until_sync(lambda: role_of(third) == "standby", timeout=10, what="a new standby")
        assert (seat_holders(conn, Seat.LEADER), seat_holders(conn, Seat.STANDBY)) == (1, 1)
    finally:
        for node in nodes:
            node.ensure_stopped()


def test_a_message_whose_notify_was_lost__is_found_by_the_poller(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    node = NodeProcess(config(tmp_path), dsn, log=tmp_path / "node.log")
    try:
        wait_until_sync(lambda: role_of(node) == "leader", what="the node to lead")
        node.wait_for_log("event=node_ready")
        with conn.transaction():  # triggers off: the enqueue sends no NOTIFY
            conn.execute("SET LOCAL session_replication_role = replica")
            streams.enqueue(conn, [request()])
        sent = time.monotonic()
        wait_until_sync(lambda: len(responses(conn)) == 1, what="the message without a NOTIFY")
        waited = time.monotonic() - sent
        assert waited < LOST_NOTIFY_BOUND, f"found after {waited:.1f}s"
        assert waited > 1.0, "handled at once: was a NOTIFY sent after all?"
    finally:
        node.ensure_stopped()
