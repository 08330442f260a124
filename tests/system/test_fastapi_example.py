"""The FastAPI example (mesh/examples/fastapi_app.py) against its ASGI app, with httpx,
while a real worker process (``mesh run``) runs the workflows: place an order, read its
status, approve it with a signal, read its result; bad input gets 4xx, never a 500."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from mesh.examples.fastapi_app import api
from tests.helpers import NodeProcess, eventually, write_config

CONFIG = """
app: shop
node: {roles: [quorum, worker]}
streams: {poll_interval: 1 second}
task_queues:
  - name: shop
    workflows: [mesh.examples.fastapi_app:fulfil_order]
    activities: [mesh.examples.fastapi_app:check_stock, mesh.examples.fastapi_app:reserve]
"""


def test_fastapi_example__orders_placed_read_and_approved_through_the_api(
    tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESH_DATABASE_URL", dsn)
    node = NodeProcess(write_config(tmp_path / "shop.yaml", CONFIG), dsn, log=tmp_path / "n.log")

    async def session() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        transport = httpx.ASGITransport(app=api)
        async with (
            api.router.lifespan_context(api),
            httpx.AsyncClient(transport=transport, base_url="http://shop") as http,
        ):
            placed = await http.post("/orders", json={"sku": "sku-100", "qty": 2})
            seen["placed"] = placed.status_code
            order = placed.json()["workflow_id"]

            async def status() -> dict[str, Any]:
                return dict((await http.get(f"/orders/{order}")).json())

            seen["waiting"] = await status()
            approved = await http.post(f"/orders/{order}/signals/approve", json={"by": "ana"})
            seen["approved"] = (approved.status_code, approved.json())
            finished: dict[str, Any] = {}

            async def done() -> bool:
                finished.update(await status())
                return finished.get("status") == "done"

            await eventually(done, timeout=60, what="the order to be done")
            seen["done"] = finished
            seen["bad"] = [
                (await http.post("/orders", json={"sku": "", "qty": 0})).status_code,
                (await http.post("/orders", content=b"not json")).status_code,
                (await http.get("/orders/no-such-order")).status_code,
                (await http.get("/orders/" + "x" * 500)).status_code,
                (await http.post(f"/orders/{order}/signals/approve", json={})).status_code,
            ]
        return seen

    try:
        node.wait_for_log("event=node_ready")
        seen = asyncio.run(session())
    finally:
        node.ensure_stopped()
    assert seen["placed"] == 201
    assert seen["waiting"]["status"] == "running" and seen["waiting"]["result"] is None
    assert seen["approved"] == (200, {"delivered": True})
    assert seen["done"]["result"] == {"status": "reserved 2 of sku-100", "approved_by": "ana"}
    assert seen["bad"] == [422, 422, 404, 400, 409], "done: a signal finds it not running"
    assert "Traceback" not in node.log()
