"""A FastAPI application that starts workflows, reads their status and signals them, with
the workflows run by a separate worker process.

The application only holds a :class:`mesh.Client` (opened in its lifespan): no node, no
actors. The workflows and activities run in ``mesh run`` nodes configured like this::

    app: shop
    task_queues:
      - name: shop
        workflows: [mesh.examples.fastapi_app:fulfil_order]
        activities: [mesh.examples.fastapi_app:check_stock,
                     mesh.examples.fastapi_app:reserve]

Run it (``MESH_DATABASE_URL`` names the database; the worker's config says the same)::

    mesh --config shop.yaml run &
    uvicorn mesh.examples.fastapi_app:api

    curl -X POST localhost:8000/orders -d '{"sku": "sku-100", "qty": 2}' \\
         -H 'content-type: application/json'
    curl localhost:8000/orders/<workflow_id>
    curl -X POST localhost:8000/orders/<workflow_id>/signals/approve -d '{"by": "ana"}' \\
         -H 'content-type: application/json'
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Body, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

from mesh import Client, workflow
from mesh.errors import InvalidIdentifier, InvalidPayload, UnknownJob

APP = "shop"
TASK_QUEUE = "shop"
STOCK = {"sku-100": 12, "sku-200": 3}


async def check_stock(sku: str) -> int:
    """An asyncio activity (it would call an inventory service)."""
    await asyncio.sleep(0)
    return STOCK.get(sku, 0)


async def reserve(sku: str, qty: int) -> str:
    await asyncio.sleep(0)
    return f"reserved {qty} of {sku}"


async def fulfil_order(sku: str, qty: int) -> dict[str, Any]:
    """Check the stock, wait for a person's approval (a day at most), then reserve."""
    acts = workflow.proxy_activities(check_stock, reserve, start_to_close="30 seconds")
    if await acts.check_stock(sku) < qty:
        return {"status": "out of stock"}
    approval = await workflow.condition("approve", timeout="1 day")
    if approval is workflow.TIMED_OUT:
        return {"status": "not approved in time"}
    return {"status": await acts.reserve(sku, qty), "approved_by": approval.get("by")}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with await Client.connect(os.environ.get("MESH_DATABASE_URL"), app=APP) as client:
        app.state.mesh = client
        yield


api = FastAPI(title="shop", lifespan=lifespan)


class Order(BaseModel):
    sku: str = Field(min_length=1, max_length=100)
    qty: int = Field(gt=0, le=1000)


def _client(request: Request) -> Client:
    client: Client = request.app.state.mesh
    return client


@api.post("/orders", status_code=201)
async def place_order(order: Order, request: Request) -> dict[str, str]:
    handle = await _client(request).start_workflow(
        fulfil_order, order.sku, order.qty, task_queue=TASK_QUEUE
    )
    return {"workflow_id": handle.workflow_id}


@api.get("/orders/{workflow_id}")
async def order_status(workflow_id: str, request: Request) -> dict[str, Any]:
    client = _client(request)
    try:
        record = await client.get_job(workflow_id, details=True)
    except UnknownJob:
        raise HTTPException(404, f"no order {workflow_id!r}") from None
    except InvalidIdentifier as error:
        raise HTTPException(400, str(error)) from None
    return {
        "workflow_id": workflow_id,
        "status": record.status,
        "result": record.data.get("result"),
    }


@api.post("/orders/{workflow_id}/signals/{signal}")
async def signal_order(
    workflow_id: str, signal: str, request: Request, data: dict[str, Any] = Body(default={})
) -> dict[str, bool]:
    try:
        delivered = await _client(request).get_handle(workflow_id).signal(signal, data)
    except (InvalidIdentifier, InvalidPayload) as error:
        raise HTTPException(400, str(error)) from None
    if not delivered:
        raise HTTPException(409, f"order {workflow_id!r} is not running")
    return {"delivered": True}
