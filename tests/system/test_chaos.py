"""A fleet under repeated SIGKILL: an engine and three worker processes; each time ten more
jobs finish, one node is killed (every other time the one holding the most leases) and
restarted, as systemd or a Procfile runner would. Every job must finish and none may fail.
Before poison isolation a kill spent an attempt of every message its node held, and 33 and
60 of these 300 jobs failed in two runs."""

from __future__ import annotations

import random
from pathlib import Path

import psycopg

from mesh.pg.client import MeshClient
from tests.helpers import NodeProcess, mesh, wait_until_sync, write_config

APP = "chaos"

MANIFEST = """
app:
  id: chaos
  version: '1'
  graphs:
    - subscribes: k.go
      activities:
        go: {type: trigger}
        first:
          type: worker
          topic: k.work
          input: {maps: {value: 0}}
        nap: {type: hook, sleep: 0.3}
        second:
          type: worker
          topic: k.work
          input: {maps: {value: '{first.output.data.value}'}}
          job: {maps: {final: '{$self.output.data.value}'}}
      transitions:
        go: [{to: first}]
        first: [{to: nap}]
        nap: [{to: second}]
"""


def test_repeated_sigkill__every_job_finishes_and_none_fails(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    path = write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
streams:
  lease: 2 seconds
  poll_interval: 0.3 seconds
  reap_interval: 0.3 seconds
  batch_size: 20
retry:
  backoff_coefficient: 1
  maximum_interval: 0.5 seconds
workers:
  - topic: k.work
    function: tests.activities:add_one_slowly
    concurrency: 20
""",
    )
    (tmp_path / "chaos.yaml").write_text(MANIFEST)
    for args in (("deploy", "chaos.yaml"), ("activate", "1")):
        result = mesh("--config", str(path), *args, dsn=dsn, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    started = 0

    def start(*roles: str) -> NodeProcess:
        nonlocal started
        started += 1
        return NodeProcess(path, dsn, *roles, log=tmp_path / f"node-{started}.log")

    nodes = {
        "engine": start("--role", "engine", "--role", "quorum"),
        "worker-1": start("--role", "worker"),
        "worker-2": start("--role", "worker"),
        "worker-3": start("--role", "worker"),
    }
    roles = {"engine": ("--role", "engine", "--role", "quorum")}
    total, kills = 300, 0
    chooser = random.Random(7)

    def busiest(candidates: dict[str, NodeProcess]) -> str:
        """The node holding the most leases: its death costs the most messages an attempt."""
        held = dict(
            conn.execute(
                "SELECT lease_owner, count(*) FROM mesh.stream_messages "
                "WHERE lease_owner IS NOT NULL GROUP BY 1"
            ).fetchall()
        )
        guids = {
            name: node.log().split("event=node_ready guid=")[-1].split()[0]
            for name, node in candidates.items()
            if "event=node_ready guid=" in node.log()
        }
        return max(guids, key=lambda name: held.get(guids[name], 0), default="worker-1")

    def finished() -> int:
        row = conn.execute("SELECT count(*) FROM mesh.jobs WHERE state <> 'running'").fetchone()
        return int(row[0]) if row else 0

    try:
        with MeshClient(dsn, app=APP) as client:
            for n in range(total):
                client.pub("k.go", {}, job_id=f"job-{n}")
        # Kill a node each time 10 more jobs finished, until all have.
        for goal in range(10, total, 10):
            wait_until_sync(lambda goal=goal: finished() >= goal, timeout=120, what=f"{goal}")
            name = busiest(nodes) if kills % 2 else chooser.choice(sorted(nodes))
            nodes[name].kill()
            kills += 1
            nodes[name] = start(*roles.get(name, ("--role", "worker")))
        wait_until_sync(lambda: finished() == total, timeout=180, what="every job")
    finally:
        for node in nodes.values():
            node.ensure_stopped()
    statuses = dict(conn.execute("SELECT state, count(*) FROM mesh.jobs GROUP BY state").fetchall())
    assert statuses == {"done": total}, statuses
    assert conn.execute("SELECT count(*) FROM mesh.dead_letters").fetchone() == (0,)
    finals = conn.execute(
        "SELECT a.value::text, count(*) FROM mesh.jobs_attributes a WHERE a.symbol = 'final' "
        "GROUP BY 1"
    ).fetchall()
    assert finals == [("2", total)], finals
    refunded = conn.execute("SELECT count(*) FROM mesh.stream_messages").fetchone()
    assert refunded == (0,), "nothing left in the streams"
    print(f"{kills} SIGKILLs, {total} jobs done")
