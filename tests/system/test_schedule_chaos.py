"""A schedule ticking every second on a mesh whose nodes are SIGKILLed in turn (the leader
among them): every tick from the first run to the last runs, none twice."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import psycopg

from mesh.pg.client import MeshClient
from tests.helpers import NodeProcess, wait_until_sync, write_config

APP = "sched-chaos"


def test_no_tick_missed_and_none_doubled_while_nodes_are_killed(tmp_path: Path, dsn: str) -> None:
    config = write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
streams: {{poll_interval: 0.5 seconds, leader_interval: 0.2 seconds}}
task_queues:
  - name: q
    workflows: [tests.code_workflows:ticked]
""",
    )
    client = MeshClient(dsn, app=APP)
    nodes: list[NodeProcess] = []
    try:
        client.create_schedule(
            "beat", "ticked", [1], every="1 second", overlap="allow_all", task_queue="q"
        )
        for n in range(2):
            nodes.append(NodeProcess(config, dsn, log=tmp_path / f"node{n}.log"))
        for node in nodes:
            node.wait_for_log("event=node_ready")

        def fired_at_least(count: int) -> bool:
            return client.describe_schedule("beat").fired >= count

        for round_ in range(4):  # kill the oldest node (often the leader), start another
            wait_until_sync(lambda r=round_: fired_at_least(3 * (r + 1)), timeout=30)
            victim = nodes.pop(0)
            victim.kill()
            fresh = NodeProcess(config, dsn, log=tmp_path / f"node{round_ + 2}.log")
            nodes.append(fresh)
        wait_until_sync(lambda: fired_at_least(15), timeout=30)
        client.pause_schedule("beat")
        described = client.describe_schedule("beat")
    finally:
        for node in nodes:
            node.kill()
        client.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        keys = [
            row[0]
            for row in conn.execute(
                "SELECT key FROM mesh.jobs WHERE app = %s AND key LIKE 'beat@%%' ORDER BY key",
                (APP,),
            )
        ]
    ticks = [datetime.strptime(k.split("@")[1], "%Y%m%dT%H%M%SZ") for k in keys]
    assert len(ticks) == len(set(ticks)) == described.fired, (len(ticks), described.fired)
    expected = [ticks[0] + timedelta(seconds=s) for s in range(len(ticks))]
    assert ticks == expected, f"ticks missing: {sorted(set(expected) - set(ticks))}"
    assert described.missed == 0
