"""Typed payloads across processes: a ``mesh run`` node runs the typed workflows and
activities; this process starts them with an asyncio Client and gets dataclasses, Decimal,
UUID and datetimes back as annotated. The node runs with the workflow checks on
(``MESH_WORKFLOW_CHECKS=on``)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from mesh import Client
from tests.helpers import NodeProcess, write_config
from tests.typed_flows import KINDS, Approval, Receipt, an_order, parent, ship

APP = "typed-nodes"


async def _drive(dsn: str) -> tuple[Receipt, list[str]]:
    async with await Client.connect(dsn, app=APP) as client:
        handle = await client.start_workflow(ship, an_order(7), task_queue="typed")
        approval = Approval("ops", datetime(2026, 12, 7, 13, 0, tzinfo=UTC))
        assert await handle.signal("approve", approval) is True
        receipt = await asyncio.wait_for(handle.result(), 60)
        chain = await asyncio.wait_for(
            client.execute_workflow(parent, an_order(8), task_queue="typed"), 60
        )
        return receipt, chain


def test_typed_values_cross_processes(tmp_path: Path, dsn: str) -> None:
    config = write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
streams: {{poll_interval: 0.5 seconds}}
task_queues:
  - name: typed
    workflows: [tests.typed_flows:ship, tests.typed_flows:parent, tests.typed_flows:wait_for]
    activities: [tests.typed_flows:price, tests.typed_flows:echo_receipt]
""",
    )
    node = NodeProcess(config, dsn, log=tmp_path / "node.log", env={"MESH_WORKFLOW_CHECKS": "on"})
    try:
        node.wait_for_log("event=node_ready")
        receipt, chain = asyncio.run(_drive(dsn))
        assert node.terminate() == 0
    finally:
        node.ensure_stopped()
    assert receipt == Receipt(uuid.UUID(int=7), Decimal("3.10"), KINDS, "ops"), node.log()
    assert chain == ["Receipt", "4.50", "parent"], node.log()
