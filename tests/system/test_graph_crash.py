"""The engine across real node processes (``mesh run``): SIGKILL in the middle of 200
workflows, and a new version activated while the old one's jobs are still running.

Exactly-once is checked in the database itself: test-only triggers record every worker
request the engines enqueue and every job's move out of ``running``, and a LISTEN counts
the completion events the mesh announces.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from mesh.model.ids import job_channel
from mesh.pg.client import MeshClient
from tests.helpers import NodeProcess, mesh, wait_until_sync, write_config

APP = "crash"

WORKFLOWS = """
app:
  id: crash
  version: '1'
  graphs:
    - subscribes: c.approval      # a worker, a hook waiting for a signal, a worker
      activities:
        at:
          type: trigger
          stats: {id: '{$self.input.data.id}'}
        before:
          type: worker
          topic: c.work
          input: {maps: {value: 0}}
        wait:
          type: hook
          job: {maps: {approved: '{$self.hook.data.approved}'}}
        after:
          type: worker
          topic: c.work
          input: {maps: {value: '{before.output.data.value}'}}
          job: {maps: {final: '{$self.output.data.value}'}}
      transitions:
        at: [{to: before}]
        before: [{to: wait}]
        wait: [{to: after}]
      hooks:
        c.approve:
          - to: wait
            conditions:
              match:
                - expected: '{$job.metadata.jid}'
                  actual: '{$self.hook.data.id}'
    - subscribes: c.nap           # a durable sleep, then a worker
      activities:
        nt: {type: trigger}
        nap: {type: hook, sleep: 1.5}
        nw:
          type: worker
          topic: c.work
          input: {maps: {value: 10}}
          job: {maps: {final: '{$self.output.data.value}'}}
      transitions:
        nt: [{to: nap}]
        nap: [{to: nw}]
    - subscribes: c.loop          # four rounds of a worker through a cycle
      activities:
        lt:
          type: trigger
          job: {maps: {count: 0}}
        pivot: {type: hook}
        step:
          type: worker
          topic: c.work
          input: {maps: {value: '{$job.data.count}'}}
          job:
            maps:
              count:
                '@pipe':
                  - ['{$job.data.count}', 1]
                  - ['{@math.add}']
        again: {type: cycle, ancestor: pivot}
      transitions:
        lt: [{to: pivot}]
        pivot: [{to: step}]
        step:
          - to: again
            conditions:
              match:
                - expected: true
                  actual:
                    '@pipe':
                      - ['{$job.data.count}', 4]
                      - ['{@conditional.less_than}']
    - subscribes: c.parent        # awaits a child that works, then sleeps
      activities:
        pt: {type: trigger}
        kid:
          type: await
          topic: c.child
          input: {maps: {value: 5}}
          job: {maps: {fromChild: '{$self.output.data.result}'}}
      transitions:
        pt: [{to: kid}]
    - subscribes: c.child
      activities:
        ct: {type: trigger}
        cw:
          type: worker
          topic: c.work
          input: {maps: {value: '{ct.output.data.value}'}}
        cnap:
          type: hook
          sleep: 1
          job: {maps: {result: '{cw.output.data.value}'}}
      transitions:
        ct: [{to: cw}]
        cw: [{to: cnap}]
"""

WORKER_REQUESTS = {"c.approval": 2, "c.nap": 1, "c.loop": 4, "c.parent": 0, "c.child": 1}

AUDIT = """
CREATE TABLE test_requests (job text, activity text, dimension text);
CREATE FUNCTION test_audit_request() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_requests VALUES (NEW.payload->>'job_id', NEW.payload->>'activity_id',
                                      coalesce(NEW.payload->>'dimension', ''));
    RETURN NULL;
END $$;
CREATE TRIGGER test_audit_request AFTER INSERT ON mesh.stream_messages
    FOR EACH ROW WHEN (NEW.stream <> 'engine') EXECUTE FUNCTION test_audit_request();

CREATE TABLE test_finishes (job text, status text);
CREATE FUNCTION test_audit_finish() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_finishes VALUES (NEW.key, NEW.state);
    RETURN NULL;
END $$;
CREATE TRIGGER test_audit_finish AFTER UPDATE OF state ON mesh.jobs
    FOR EACH ROW WHEN (OLD.state = 'running' AND NEW.state <> 'running')
    EXECUTE FUNCTION test_audit_finish();
CREATE TRIGGER test_audit_finished_at_once AFTER INSERT ON mesh.jobs
    FOR EACH ROW WHEN (NEW.state <> 'running') EXECUTE FUNCTION test_audit_finish();
"""


def node_config(tmp_path: Path, roles: str = "[engine, quorum, worker]") -> Path:
    return write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
node:
  roles: {roles}
  drain_timeout: 10 seconds
streams:
  lease: 2 seconds
  poll_interval: 0.5 seconds
  reap_interval: 0.3 seconds
  batch_size: 10
retry:
  maximum_attempts: 5
  backoff_coefficient: 1
  maximum_interval: 0.5 seconds
workers:
  - topic: c.work
    function: tests.activities:add_one
    concurrency: 10
""",
    )


def deploy(tmp_path: Path, dsn: str, manifest: str, version: str) -> None:
    path = tmp_path / f"workflows-{version}.yaml"
    path.write_text(manifest)
    for args in (("deploy", str(path)), ("activate", version)):
        done = mesh("--config", str(tmp_path / "mesh.yaml"), *args, dsn=dsn, cwd=tmp_path)
        assert done.returncode == 0, done.stderr


def count(conn: psycopg.Connection, sql: str, params: Any = None) -> int:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def test_sigkill_mid_run__another_node_completes_every_workflow_exactly_once(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    conn.execute(AUDIT)
    config = node_config(tmp_path)
    deploy(tmp_path, dsn, WORKFLOWS, "1")
    listener = psycopg.connect(dsn, autocommit=True)
    listener.execute(f'LISTEN "{job_channel(APP)}"')
    first = NodeProcess(config, dsn, log=tmp_path / "first.log")
    second: NodeProcess | None = None
    try:
        with MeshClient(dsn, app=APP) as client:
            approvals = [client.pub("c.approval", {"id": f"approval-{i}"}) for i in range(50)]
            started = {
                "c.approval": approvals,
                **{
                    topic: [client.pub(topic, {}) for _ in range(50)]
                    for topic in ("c.nap", "c.loop", "c.parent")
                },
            }
            # Half the approvals are signalled before the crash (buffered if not yet waiting).
            for key in approvals[:25]:
                client.signal("c.approve", {"id": key, "approved": True})
            wait_until_sync(
                lambda: count(conn, "SELECT count(*) FROM mesh.jobs WHERE state = 'done'") >= 30,
                what="the first node to finish some workflows",
            )
            first.kill()
            running = {
                topic: count(
                    conn,
                    "SELECT count(*) FROM mesh.jobs WHERE topic = %s AND state = 'running'",
                    (topic,),
                )
                for topic in ("c.approval", "c.nap", "c.loop", "c.parent")
            }
            in_hooks = count(conn, "SELECT count(*) FROM mesh.hook_signals")
            # The crash caught workflows of every kind mid-way.
            assert all(n > 0 for n in running.values()), running
            assert in_hooks > 0
            second = NodeProcess(config, dsn, log=tmp_path / "second.log")
            for key in approvals[25:]:
                client.signal("c.approve", {"id": key, "approved": True})
            wait_until_sync(
                lambda: count(conn, "SELECT count(*) FROM mesh.jobs WHERE state = 'running'") == 0,
                timeout=90,
                what="every workflow to finish after the takeover",
            )
            records = {
                topic: [client.get_job(key) for key in keys] for topic, keys in started.items()
            }
        events = Counter(
            event["job_id"]
            for n in listener.notifies(timeout=0.5)
            for event in json.loads(n.payload)
        )
    finally:
        listener.close()
        first.ensure_stopped()
        if second is not None:
            second.ensure_stopped()

    jobs = conn.execute("SELECT key, topic, state FROM mesh.jobs").fetchall()
    assert len(jobs) == 250  # 200 started, 50 children
    assert {status for _, _, status in jobs} == {"done"}
    # Each job finished once: one status change out of running, one completion event.
    finishes = Counter(job for job, _ in conn.execute("SELECT job, status FROM test_finishes"))
    assert len(finishes) == 250 and set(finishes.values()) == {1}
    assert set(events) == {key for key, _, _ in jobs} and set(events.values()) == {1}
    # The engines asked for each worker activity once: no Leg 1 ran twice.
    requests = Counter(conn.execute("SELECT job, activity, dimension FROM test_requests"))
    assert set(requests.values()) == {1}
    per_job = Counter(job for job, _, _ in requests)
    for key, topic, _ in jobs:
        assert per_job[key] == WORKER_REQUESTS[topic], (key, topic)
    # And each job took the same path through its graph as every other job of that graph.
    paths: dict[str, set[tuple[Any, ...]]] = {}
    for topic, steps in conn.execute(
        "SELECT j.topic, array_agg(ROW(s.activity, s.dimension, s.leg, s.code)::text "
        "ORDER BY s.activity, s.dimension, s.leg) FROM mesh.jobs j "
        "JOIN mesh.job_steps s ON s.job_id = j.id GROUP BY j.id, j.topic"
    ):
        paths.setdefault(topic, set()).add(tuple(steps))
    assert all(len(p) == 1 for p in paths.values()), paths
    # The results are right.
    assert {r.data["final"] for r in records["c.approval"]} == {2}
    assert {r.data["approved"] for r in records["c.approval"]} == {True}
    assert {r.data["final"] for r in records["c.nap"]} == {11}
    assert {r.data["count"] for r in records["c.loop"]} == {4}
    assert {r.data["fromChild"] for r in records["c.parent"]} == {6}
    # Nothing is left behind.
    assert count(conn, "SELECT count(*) FROM mesh.stream_messages") == 0
    assert count(conn, "SELECT count(*) FROM mesh.dead_letters") == 0
    assert count(conn, "SELECT count(*) FROM mesh.hook_signals") == 0


def redeploy_manifest(version: str, hook_topic: str, hold: str, value: int) -> str:
    return f"""
app:
  id: crash
  version: '{version}'
  graphs:
    - subscribes: r.go
      activities:
        rt:
          type: trigger
          stats: {{id: '{{$self.input.data.id}}'}}
        {hold}:
          type: hook
          job: {{maps: {{graph: '{version}'}}}}
        rw:
          type: worker
          topic: c.work
          input: {{maps: {{value: {value}}}}}
          job: {{maps: {{final: '{{$self.output.data.value}}'}}}}
      transitions:
        rt: [{{to: {hold}}}]
        {hold}: [{{to: rw}}]
      hooks:
        {hook_topic}:
          - to: {hold}
            conditions:
              match:
                - expected: '{{$job.metadata.jid}}'
                  actual: '{{$self.hook.data.id}}'
"""


def test_redeploy__running_jobs_keep_their_version_and_later_nodes_use_the_new_one(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    config = node_config(tmp_path)
    deploy(tmp_path, dsn, redeploy_manifest("1", "r.release", "hold", 1), "1")

    def waiting(prefix: str) -> int:
        return count(
            conn,
            "SELECT count(*) FROM mesh.hook_signals h JOIN mesh.jobs j ON j.id = h.job_id "
            "WHERE j.key LIKE %s",
            (prefix + "%",),
        )

    def finished(keys: list[str]) -> bool:
        return count(
            conn,
            "SELECT count(*) FROM mesh.jobs WHERE key = ANY(%s) AND state <> 'running'",
            (keys,),
        ) == len(keys)

    first = NodeProcess(config, dsn, log=tmp_path / "first.log")
    second: NodeProcess | None = None
    try:
        with MeshClient(dsn, app=APP) as client:
            old = [client.pub("r.go", {"id": f"one-{i}"}) for i in range(20)]
            wait_until_sync(lambda: waiting("one-") == 20, what="version 1 jobs at their hook")
            # Version 2 renames the hook and its signal topic and changes the worker input.
            deploy(tmp_path, dsn, redeploy_manifest("2", "r.open", "gate", 100), "2")
            new = [client.pub("r.go", {"id": f"two-{i}"}) for i in range(10)]
            wait_until_sync(lambda: waiting("two-") == 10, what="version 2 jobs at their hook")
            for key in old[:10]:
                assert client.signal("r.release", {"id": key}) == 1
            for key in new:
                assert client.signal("r.open", {"id": key}) == 1
            wait_until_sync(lambda: finished(old[:10] + new), what="the released jobs to finish")
            assert first.terminate() == 0
            # A node started after the activation finishes the old jobs with their graph and
            # runs new jobs with version 2.
            second = NodeProcess(config, dsn, log=tmp_path / "second.log")
            for key in old[10:]:
                assert client.signal("r.release", {"id": key}) == 1
            published = mesh(
                "--config", str(config), "pub", "r.go", '{"id": "late"}', dsn=dsn, cwd=tmp_path
            )
            assert published.returncode == 0, published.stderr
            wait_until_sync(lambda: waiting("late") == 1, what="the late job at its hook")
            assert client.signal("r.open", {"id": "late"}) == 1
            wait_until_sync(lambda: finished([*old, *new, "late"]), what="every job to finish")
            records = {key: client.get_job(key) for key in [*old, *new, "late"]}
    finally:
        first.ensure_stopped()
        if second is not None:
            second.ensure_stopped()

    for key, record in records.items():
        version = "1" if key.startswith("one-") else "2"
        hold = "hold" if version == "1" else "gate"
        assert record.status == "done" and record.version == version, key
        assert record.data == {"graph": version, "final": 2 if version == "1" else 101}, key
        assert {s.activity for s in record.timeline} == {"rt", hold, "rw"}, key
