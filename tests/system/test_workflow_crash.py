"""SIGKILL the node running 200 code workflows of every shape; a second node finishes each
exactly once: one completion per workflow, one request per recorded activity call."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import psycopg

from mesh.pg.client import MeshClient
from tests.code_workflows import EXPECTED
from tests.helpers import NodeProcess, wait_until_sync, write_config

APP = "crash"
QUEUE = "crash"

AUDIT = """
CREATE TABLE test_requests (job text, gid text, position text);
CREATE FUNCTION test_audit_request() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_requests VALUES (NEW.payload->>'job_id', NEW.payload->>'job_gid',
                                      NEW.payload->>'activity_id');
    RETURN NULL;
END $$;
CREATE TRIGGER test_audit_request AFTER INSERT ON mesh.stream_messages
    FOR EACH ROW WHEN (NEW.stream = 'crash-activity') EXECUTE FUNCTION test_audit_request();

CREATE TABLE test_finishes (job text, status text);
CREATE FUNCTION test_audit_finish() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_finishes VALUES (NEW.key, NEW.state);
    RETURN NULL;
END $$;
CREATE TRIGGER test_audit_finish AFTER UPDATE OF state ON mesh.jobs
    FOR EACH ROW WHEN (OLD.state = 'running' AND NEW.state <> 'running')
    EXECUTE FUNCTION test_audit_finish();
"""


def node_config(tmp_path: Path) -> Path:
    functions = ", ".join(f"tests.code_workflows:{name}" for name in [*EXPECTED, "child"])
    return write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
node:
  roles: [engine, quorum, worker]
  drain_timeout: 10 seconds
streams:
  lease: 2 seconds
  poll_interval: 0.5 seconds
  reap_interval: 0.3 seconds
  batch_size: 10
task_queues:
  - name: {QUEUE}
    workflows: [{functions}]
    activities: [tests.code_workflows:add_one]
    concurrency: 10
""",
    )


def count(conn: psycopg.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_sigkill_mid_run__a_second_node_finishes_every_code_workflow_once(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    conn.execute(AUDIT)
    config = node_config(tmp_path)
    first = NodeProcess(config, dsn, log=tmp_path / "first.log")
    second: NodeProcess | None = None
    shapes = list(EXPECTED)
    try:
        first.wait_for_log("event=node_ready")
        with MeshClient(dsn, app=APP) as client:
            started = {
                f"{shape}-{n}": (shape, n)
                for n in range(200 // len(shapes) + 1)
                for shape in shapes
            }
            started = dict(list(started.items())[:200])
            for key, (shape, n) in started.items():
                client.start_workflow(shape, n, task_queue=QUEUE, workflow_id=key)
            approvals = [key for key, (shape, _) in started.items() if shape == "approval"]
            for key in approvals[: len(approvals) // 2]:  # some wait for them, some not yet
                client.get_handle(key).signal("approve", {"ok": started[key][1]})
            wait_until_sync(
                lambda: count(conn, "SELECT count(*) FROM mesh.jobs WHERE state = 'done'") >= 40,
                what="the first node to finish some workflows",
            )
            first.kill()
            running = count(conn, "SELECT count(*) FROM mesh.jobs WHERE state = 'running'")
            assert running > 0, "the crash caught workflows mid-way"
            second = NodeProcess(config, dsn, log=tmp_path / "second.log")
            for key in approvals[len(approvals) // 2 :]:
                client.get_handle(key).signal("approve", {"ok": started[key][1]})
            wait_until_sync(
                lambda: count(conn, "SELECT count(*) FROM mesh.jobs WHERE state = 'running'") == 0,
                timeout=120,
                what="every workflow to finish after the takeover",
            )
            results = {key: client.get_handle(key).result(timeout=5) for key in started}
    finally:
        first.ensure_stopped()
        if second is not None:
            second.ensure_stopped()
    assert results == {key: EXPECTED[shape](n) for key, (shape, n) in started.items()}
    finishes = Counter(job for (job,) in conn.execute("SELECT job FROM test_finishes"))
    children = sum(1 for shape, _ in started.values() if shape == "parent")
    assert len(finishes) == 200 + children and set(finishes.values()) == {1}
    requests = Counter(conn.execute("SELECT job, gid, position FROM test_requests").fetchall())
    assert requests and set(requests.values()) == {1}, "an activity call was requested twice"
    steps = count(conn, "SELECT count(*) FROM mesh.workflow_steps WHERE NOT done")
    assert steps == 0
