"""A node survives its Postgres going away and coming back, and still stops in bounded time
when SIGTERM arrives while the database is down. Uses a Postgres of its own, so stopping it
does not disturb the other tests."""

from __future__ import annotations

import contextlib
import shutil
import signal
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mesh.pg.migrations import migrate
from tests.conftest import ROOT
from tests.helpers import NodeProcess, wait_until_sync, write_config
from tests.nodes import APP, TOPIC, send


@pytest.fixture
def own_server() -> Iterator[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver._commands import pg_ctl

        data = ROOT / ".mesh" / f"outage-{uuid.uuid4().hex[:8]}"
        server = pgserver.get_server(data, cleanup_mode=None)
    server.stop_now = lambda: pg_ctl(
        ["-w", "-m", "immediate", "stop"], pgdata=data, user=server.system_user
    )
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):  # already stopped
            server.stop_now()
        pgserver.PostgresServer._instances.pop(server.pgdata, None)
        shutil.rmtree(data, ignore_errors=True)


def count_responses(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM mesh.stream_messages WHERE stream = 'replies'"
        ).fetchone()
        return int(row[0]) if row else 0


def test_postgres_restart__the_node_recovers_then_stops_in_bounded_time(
    tmp_path: Path, own_server: Any
) -> None:
    dsn = own_server.get_uri()
    with psycopg.connect(dsn, autocommit=True) as conn:
        migrate(conn)
        send(conn, {"n": 1})
    path = write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
node:
  roles: [quorum, worker]  # the test reads the responses off their stream itself
  listener_check_interval: 1 second
  drain_timeout: 5 seconds
streams:
  poll_interval: 0.3 seconds
workers:
  - topic: {TOPIC}
    function: tests.activities:echo
""",
    )
    node = NodeProcess(path, dsn, log=tmp_path / "node.log")
    try:
        wait_until_sync(lambda: count_responses(dsn) == 1, what="the first response")

        own_server.stop_now()
        wait_until_sync(
            lambda: "event=listener_lost" in node.log(), what="the node to notice the outage"
        )
        wait_until_sync(
            lambda: "event=claim_failed" in node.log(),
            what="claims to fail while the database is down",
        )
        assert node.process.poll() is None, "the node exited because of a database outage"

        own_server.ensure_postgres_running()
        with psycopg.connect(dsn, autocommit=True) as conn:
            send(conn, {"n": 2})
        wait_until_sync(lambda: count_responses(dsn) == 2, what="a delivery after the restart")
        wait_until_sync(
            lambda: node.log().count("event=listener_connected") >= 2,
            what="the listener to reconnect",
        )

        own_server.stop_now()
        wait_until_sync(
            lambda: node.log().count("event=listener_lost") >= 2,
            what="the second outage to be noticed",
        )
        started = time.monotonic()
        node.process.send_signal(signal.SIGTERM)
        code = node.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        node.ensure_stopped()
    assert code == 0, node.log()
    assert took < 15, f"shutdown with the database down took {took:.1f}s"
