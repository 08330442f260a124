"""Signals sent at random moments to 500 workflows, some before the workflow reaches its
condition, with the workflows on two ``mesh run`` nodes and their activities on a third: a
signal handled by one node while another moves the same workflow to its condition must be
consumed, every time (one was lost in a few hundred: the condition read the buffered signals
from a snapshot taken before it got the workflow's lock)."""

from __future__ import annotations

import random
from pathlib import Path

import psycopg

from mesh.pg.client import MeshClient
from tests.helpers import NodeProcess, wait_until_sync, write_config

APP = "race"
QUEUE = "race"
COMMON = f"""
app: {APP}
streams:
  lease: 10 seconds
  poll_interval: 1 second
  batch_size: 10
"""


def count(conn: psycopg.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_signals_at_random_moments__every_one_is_consumed_across_nodes(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    workflows = write_config(
        tmp_path / "workflows.yaml",
        COMMON
        + f"""
node: {{roles: [quorum, worker]}}
task_queues:
  - name: {QUEUE}
    workflows: [tests.code_workflows:signalled]
    concurrency: 20
""",
    )
    activities = write_config(
        tmp_path / "activities.yaml",
        COMMON
        + f"""
node: {{roles: [quorum, worker]}}
task_queues:
  - name: {QUEUE}
    activities: [tests.code_workflows:add_one]
    concurrency: 50
""",
    )
    nodes = [
        NodeProcess(workflows, dsn, log=tmp_path / "workflows-1.log"),
        NodeProcess(workflows, dsn, log=tmp_path / "workflows-2.log"),
        NodeProcess(activities, dsn, log=tmp_path / "activities.log"),
    ]
    chooser = random.Random(22)
    total = 500
    try:
        for node in nodes:
            node.wait_for_log("event=node_ready")
        with MeshClient(dsn, app=APP) as client:
            # Each signal goes out after a random number of later starts (0: at once, long
            # before its workflow's activity has run; 8: often after it waits).
            due: dict[int, list[str]] = {}
            for n in range(total):
                key = f"w-{n}"
                client.start_workflow("signalled", n, task_queue=QUEUE, workflow_id=key)
                due.setdefault(n + chooser.randint(0, 8), []).append(key)
                for late in due.pop(n, []):
                    assert client.get_handle(late).signal("go", {"to": late})
            for n in sorted(due):
                for late in due[n]:
                    assert client.get_handle(late).signal("go", {"to": late})
            wait_until_sync(
                lambda: count(conn, "SELECT count(*) FROM mesh.jobs WHERE state = 'running'") == 0,
                timeout=120,
                what="every workflow to end",
            )
            results = {
                f"w-{n}": client.get_handle(f"w-{n}").result(timeout=5) for n in range(total)
            }
    finally:
        for node in nodes:
            node.ensure_stopped()
    expected = {f"w-{n}": {"first": n + 1, "signal": {"to": f"w-{n}"}} for n in range(total)}
    wrong = {key: value for key, value in results.items() if value != expected[key]}
    assert not wrong, f"{len(wrong)} workflows missed their signal: {list(wrong.items())[:5]}"
    left = count(
        conn,
        "SELECT count(*) FROM mesh.jobs_attributes "
        "WHERE dimension = '$signals' AND value <> '[]'::jsonb",
    )
    assert left == 0, "a signal was buffered and never consumed"
    assert count(conn, "SELECT count(*) FROM mesh.jobs WHERE state <> 'done'") == 0
