"""An activity's heartbeat details outlive its node: they are kept with each lease
extension, so when the node running the attempt is SIGKILLed, the next attempt (on
another node, once the lease ran out) reads them with ``activity.details()``."""

from __future__ import annotations

import json
from pathlib import Path

from mesh.pg.client import MeshClient
from tests.helpers import NodeProcess, scalar, wait_until_sync, write_config

APP = "beats"


def test_heartbeat_details_reach_the_next_attempt_after_a_sigkill(tmp_path: Path, dsn: str) -> None:
    config = write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
streams:
  lease: 1.5 seconds
  poll_interval: 0.5 seconds
  reap_interval: 0.3 seconds
task_queues:
  - name: beats
    workflows: [tests.code_workflows:counting]
    activities: [tests.code_workflows:counts_on]
""",
    )
    first = NodeProcess(config, dsn, log=tmp_path / "first.log")
    second = None
    try:
        first.wait_for_log("event=node_ready")
        with MeshClient(dsn, app=APP) as client:
            handle = client.start_workflow("counting", 7, task_queue="beats")

            def kept() -> object:
                return scalar(
                    dsn,
                    "SELECT payload->'heartbeat' FROM mesh.stream_messages "
                    "WHERE stream = 'beats-activity' AND lease_owner IS NOT NULL",
                )

            wait_until_sync(lambda: kept() is not None, what="the details in the request")
            assert kept() == {"done": 7}
            first.kill()
            second = NodeProcess(config, dsn, log=tmp_path / "second.log")
            result = handle.result(timeout=60)
        assert result == {"attempt": 2, "resumed_from": {"done": 7}}, json.dumps(result)
    finally:
        first.ensure_stopped()
        if second is not None:
            assert second.terminate() == 0
            second.ensure_stopped()
